"""The usability scorecard: the study's 1-5 scores per framework (Table 8), and the evidence servingbench measures."""
