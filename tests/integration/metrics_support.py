"""Reading ``GET /api/metrics`` the way Prometheus does (CONTRACT §2.12)."""

from __future__ import annotations

from django.core.cache import cache
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from system.api.metrics import STORED_TOTALS_CACHE_KEY


def scrape() -> dict:
    """One scrape, by family name. The stored totals are read afresh, as a scrape more than 10 s after the last
    one reads them (they are cached that long)."""
    cache.delete(STORED_TOTALS_CACHE_KEY)
    response = Client().get("/api/metrics")
    assert response.status_code == 200, response.content
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def scraped(family: str, **labels) -> float:
    """The value of the sample of counter ``family`` (named without ``_total``) with exactly ``labels``; 0 when the
    scrape has none."""
    samples = scrape()[family].samples
    return sum(s.value for s in samples if s.name == f"{family}_total" and s.labels == labels)


def scraped_by(family: str, label: str) -> dict[str, float]:
    """The ``_total`` samples of counter ``family`` by the value of its ``label`` (summed over the other labels), from
    one scrape."""
    totals: dict[str, float] = {}
    for sample in scrape()[family].samples:
        if sample.name == f"{family}_total":
            totals[sample.labels[label]] = totals.get(sample.labels[label], 0.0) + sample.value
    return totals
