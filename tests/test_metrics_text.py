"""Prometheus metrics pages read through prometheus_client's parser, as each adapter reads its server's."""
import pytest

from servingbench.adapters import tfserving, torchserve, triton
from servingbench.adapters.http_metrics import prometheus_counters

# Trimmed from Triton 2.51's /metrics (the bundled tritonserver) after one request, plus a second model.
TRITON_TEXT = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="resnet50",version="1"} 3
nv_inference_request_success{model="resnet50-int8",version="1"} 40
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="resnet50",reason="OTHER",version="1"} 0
# HELP nv_inference_request_duration_us Cumulative inference request duration in microseconds
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="resnet50",version="1"} 98496
nv_inference_request_duration_us{model="resnet50-int8",version="1"} 5000
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="resnet50",version="1"} 88
# HELP nv_inference_compute_input_duration_us Cumulative compute input duration in microseconds
# TYPE nv_inference_compute_input_duration_us counter
nv_inference_compute_input_duration_us{model="resnet50",version="1"} 1745
# HELP nv_inference_compute_infer_duration_us Cumulative compute inference duration in microseconds
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="resnet50",version="1"} 96086
# HELP nv_inference_compute_output_duration_us Cumulative inference compute output duration in microseconds
# TYPE nv_inference_compute_output_duration_us counter
nv_inference_compute_output_duration_us{model="resnet50",version="1"} 564
# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="resnet50",version="1"} 0
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0
"""

# Trimmed from TorchServe 0.12's metrics page (its labels end with a comma), plus a second model.
TORCHSERVE_TEXT = """\
# HELP ts_queue_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_queue_latency_microseconds counter
ts_queue_latency_microseconds{model_name="resnet50",model_version="default",hostname="vm",} 202.269
ts_queue_latency_microseconds{model_name="resnet50-int8",model_version="default",hostname="vm",} 1000.0
# HELP MemoryUsed Torchserve prometheus gauge metric with unit: Megabytes
# TYPE MemoryUsed gauge
MemoryUsed{Level="Host",Hostname="vm",} 1002.0625
# HELP Requests4XX Torchserve prometheus counter metric with unit: Count
# TYPE Requests4XX counter
# HELP ts_inference_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{model_name="resnet50",model_version="default",hostname="vm",} 140053.479
ts_inference_latency_microseconds{model_name="resnet50-int8",model_version="default",hostname="vm",} 9000.0
# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="resnet50",model_version="default",hostname="vm",} 1.0
ts_inference_requests_total{model_name="resnet50-int8",model_version="default",hostname="vm",} 7.0
"""

# TF Serving's Prometheus exporter: names start with ':'; latencies are histograms (microseconds).
TFSERVING_TEXT = """\
# TYPE :tensorflow:serving:request_count counter
:tensorflow:serving:request_count{model_name="resnet50",status="OK"} 12
:tensorflow:serving:request_count{model_name="resnet50",status="INVALID_ARGUMENT"} 2
# TYPE :tensorflow:serving:request_latency histogram
:tensorflow:serving:request_latency_bucket{model_name="resnet50",API="predict",entrypoint="REST",le="10"} 0
:tensorflow:serving:request_latency_bucket{model_name="resnet50",API="predict",entrypoint="REST",le="+Inf"} 14
:tensorflow:serving:request_latency_sum{model_name="resnet50",API="predict",entrypoint="REST"} 1.5e+06
:tensorflow:serving:request_latency_count{model_name="resnet50",API="predict",entrypoint="REST"} 14
# TYPE :tensorflow:serving:runtime_latency histogram
:tensorflow:serving:runtime_latency_bucket{model_name="resnet50",API="Predict",runtime="TF1",le="+Inf"} 14
:tensorflow:serving:runtime_latency_sum{model_name="resnet50",API="Predict",runtime="TF1"} 1.2e+06
:tensorflow:serving:runtime_latency_count{model_name="resnet50",API="Predict",runtime="TF1"} 14
"""


def test_triton_counters_declared_without_total_are_read_by_their_own_name():
    assert prometheus_counters(TRITON_TEXT, triton.METRICS, {"model": "resnet50"}) == {
        "requests_total": 3, "server_us_total": 98496, "queue_us_total": 88, "compute_input_us_total": 1745,
        "inference_us_total": 96086, "compute_output_us_total": 564}


def test_no_label_filter_sums_every_model():
    assert prometheus_counters(TRITON_TEXT, triton.METRICS, {})["requests_total"] == 43
    assert prometheus_counters(TORCHSERVE_TEXT, torchserve.METRICS, {})["requests_total"] == 8


def test_torchserve_counters_with_and_without_total_and_trailing_commas():
    assert prometheus_counters(TORCHSERVE_TEXT, torchserve.METRICS, {"model_name": "resnet50"}) == {
        "requests_total": 1.0, "queue_us_total": 202.269, "server_us_total": 140053.479}


@pytest.mark.parametrize("labels,requests", [
    ({"model_name": "resnet50"}, 1.0), ({"model_name": "resnet50-int8"}, 7.0), ({"model_name": "resnet5"}, None),
    ({"model_name": "int8"}, None),
    ({"name": "resnet50"}, None),  # a label named like the end of another label's name
])
def test_labels_match_only_exactly_never_as_a_substring(labels, requests):
    assert prometheus_counters(TORCHSERVE_TEXT, torchserve.METRICS, labels).get("requests_total") == requests


def test_every_wanted_label_must_match():
    wanted = {"model_name": "resnet50", "model_version": "default"}
    assert prometheus_counters(TORCHSERVE_TEXT, torchserve.METRICS, wanted)["requests_total"] == 1.0
    wanted["model_version"] = "2.0"
    assert prometheus_counters(TORCHSERVE_TEXT, torchserve.METRICS, wanted) == {}


def test_tfserving_names_starting_with_a_colon_and_histogram_sums():
    assert prometheus_counters(TFSERVING_TEXT, tfserving.METRICS, {"model_name": "resnet50"}) == {
        "requests_total": 14, "server_us_total": 1.5e6, "inference_us_total": 1.2e6}
    ok_only = prometheus_counters(TFSERVING_TEXT, tfserving.METRICS, {"status": "OK"})
    assert ok_only == {"requests_total": 12}


def test_a_timestamp_after_the_value_is_not_read_as_the_value():
    text = ('nv_inference_request_success{model="resnet50",version="1"} 12.5 1712345678000\n'
            'nv_inference_queue_duration_us 3 1712345678000\n')
    assert prometheus_counters(text, triton.METRICS, {}) == {"requests_total": 12.5, "queue_us_total": 3}


def test_escaped_quotes_commas_and_braces_inside_label_values():
    text = ('# TYPE ts_inference_requests_total counter\n'
            'ts_inference_requests_total{model_name="say \\"hi\\", {twice}",hostname="vm"} 4\n'
            'ts_inference_requests_total{model_name="say",hostname="vm"} 1\n')
    names = {"ts_inference_requests_total": "requests_total"}
    assert prometheus_counters(text, names, {"model_name": 'say "hi", {twice}'}) == {"requests_total": 4}
    assert prometheus_counters(text, names, {"model_name": "say"}) == {"requests_total": 1}


def test_comments_help_and_type_lines_are_not_samples():
    text = ("# HELP ts_inference_requests_total 99 requests, e.g. ts_inference_requests_total 99\n"
            "# ts_inference_requests_total 98\n"
            "# TYPE ts_inference_requests_total counter\n"
            "\n"
            "ts_inference_requests_total 2\n")
    assert prometheus_counters(text, {"ts_inference_requests_total": "requests_total"}, {}) == {"requests_total": 2}


def test_an_absent_page_gives_no_counters():
    assert prometheus_counters("", triton.METRICS, {}) == {}
