"""The dashboard's charts: time and value axes with units, samples at their own times, empty states."""

from __future__ import annotations

from quaero.web.charts import HEIGHT, LEFT, RIGHT, TOP, WIDTH, nice_peak, time_chart

NOW = 1_800_000_000.0


def test_a_few_recent_samples_sit_at_the_right_end_of_the_hour_not_across_it():
    chart = time_chart([(NOW - 120, 3), (NOW - 60, 5), (NOW, 4)], label="queue", unit="messages", kind="line", now=NOW)
    assert chart.empty is None
    xs = [mark.x for mark in chart.marks]
    right = WIDTH - RIGHT
    # Two minutes of a sixty-minute axis: the last 1/30 of the plot's width.
    assert all(x >= right - (right - LEFT) / 30 - 0.01 for x in xs), xs
    assert xs == sorted(xs) and abs(xs[-1] - right) < 0.01


def test_axes_have_time_labels_value_labels_and_a_unit():
    chart = time_chart([(NOW - 3600 + 60 * m, m % 7) for m in range(60)], label="throughput", unit="jobs/min",
                       kind="bars", now=NOW)
    assert [t.label for t in chart.x_ticks] == ["−60 min", "−45 min", "−30 min", "−15 min", "now"]
    assert [t.label for t in chart.y_ticks] == ["0", "5", "10"]  # the peak, 6, rounded up to a round 10
    assert chart.unit == "jobs/min"
    # Value labels go up the axis: 0 at the bottom, the top of the scale at the top.
    assert chart.y_ticks[0].at == HEIGHT - 16 and chart.y_ticks[-1].at == TOP
    tallest = min(chart.marks, key=lambda m: m.y)
    assert "6 jobs/min" in tallest.title and tallest.title.endswith("jobs/min")


def test_a_window_without_data_says_so():
    assert time_chart([], label="q", unit="messages", kind="line", now=NOW, empty="No samples yet.").empty \
        == "No samples yet."
    zeros = time_chart([(NOW - 60 * m, 0) for m in range(60)], label="t", unit="jobs/min", kind="bars", now=NOW,
                       empty="No job finished in the last hour.")
    assert zeros.empty == "No job finished in the last hour."
    old = time_chart([(NOW - 7200, 9)], label="q", unit="messages", kind="line", now=NOW)
    assert old.empty == "No data yet." and old.marks == ()


def test_scale_tops_are_round_numbers():
    assert [nice_peak(v) for v in (0, 1, 3, 7, 12, 180, 999)] == [1, 1, 5, 10, 20, 200, 1000]


def test_the_dashboard_draws_both_charts_with_their_axes(client):
    page = client.get("/").text
    assert 'aria-label="jobs finished per minute over the last hour"' not in page  # nothing finished yet
    assert "No job finished in the last hour." in page
    # The queue was sampled when the dashboard first asked: one point, at "now".
    assert 'aria-label="messages in the queue over the last hour"' in page
    assert ">now</text>" in page and ">−60 min</text>" in page and ">messages</text>" in page
