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
