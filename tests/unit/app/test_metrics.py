"""/metrics in the Prometheus text format: families, labels, and the round counters."""

from __future__ import annotations

from streams.app.metrics import Metrics


def test_labelled_counters_render_one_line_per_value_sorted() -> None:
    metrics = Metrics()
    metrics.dead_letters["JournalError"] += 1
    metrics.dead_letters["CodecError"] += 2
    metrics.rounds["leads"] += 3
    metrics.round_records["leads"] += 120
    text = metrics.render()
    assert "# TYPE referral_dead_letters_total counter" in text
    codec = text.index('referral_dead_letters_total{reason="CodecError"} 2')
    journal = text.index('referral_dead_letters_total{reason="JournalError"} 1')
    assert codec < journal
    assert 'referral_rounds_total{agent="leads"} 3' in text
    assert 'referral_round_records_total{agent="leads"} 120' in text
    assert text.endswith("\n")


def test_record_ages_render_as_a_cumulative_histogram_per_agent() -> None:
    metrics = Metrics()
    metrics.taken("leads", [0.001, 0.004, 0.012, 0.3, 60.0])
    metrics.round_messages["leads"] += 40
    text = metrics.render()
    assert "# TYPE referral_record_age_seconds histogram" in text
    assert 'referral_record_age_seconds_bucket{agent="leads",le="0.005"} 2' in text
    assert 'referral_record_age_seconds_bucket{agent="leads",le="0.01"} 2' in text
    assert 'referral_record_age_seconds_bucket{agent="leads",le="0.02"} 3' in text
    assert 'referral_record_age_seconds_bucket{agent="leads",le="0.5"} 4' in text
    assert 'referral_record_age_seconds_bucket{agent="leads",le="30.0"} 4' in text
    assert 'referral_record_age_seconds_bucket{agent="leads",le="+Inf"} 5' in text
    assert 'referral_record_age_seconds_count{agent="leads"} 5' in text
    assert 'referral_record_age_seconds_sum{agent="leads"} 60.317' in text
    assert 'referral_round_messages_total{agent="leads"} 40' in text
