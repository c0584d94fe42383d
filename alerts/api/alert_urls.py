"""Routes of /api/alerts (CONTRACT §2.7); every path works with and without a trailing slash, and an id of the
wrong shape matches no route (404)."""

from django.urls import re_path

from alerts.api import alerts, rules

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
RULE_ID = rf"(?P<rule_id>{UUID})"
ALERT_ID = rf"(?P<alert_id>{UUID})"

urlpatterns = [
    re_path(r"^alerts/rules/?$", rules.RuleListView.as_view(), name="alert-rule-list"),
    re_path(r"^alerts/rules/backtest/?$", rules.RuleBacktestView.as_view(), name="alert-rule-backtest"),
    re_path(rf"^alerts/rules/{RULE_ID}/?$", rules.RuleDetailView.as_view(), name="alert-rule-detail"),
    re_path(rf"^alerts/rules/{RULE_ID}/test/?$", rules.RuleTestView.as_view(), name="alert-rule-test"),
    re_path(r"^alerts/?$", alerts.AlertListView.as_view(), name="alert-list"),
    re_path(r"^alerts/stats/?$", alerts.AlertStatsView.as_view(), name="alert-stats"),
    re_path(rf"^alerts/{ALERT_ID}/?$", alerts.AlertDetailView.as_view(), name="alert-detail"),
    re_path(rf"^alerts/{ALERT_ID}/acknowledge/?$", alerts.AlertAcknowledgeView.as_view(), name="alert-acknowledge"),
    re_path(rf"^alerts/{ALERT_ID}/dismiss/?$", alerts.AlertDismissView.as_view(), name="alert-dismiss"),
]
