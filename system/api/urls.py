from django.urls import re_path

from system.api import admin_ops

urlpatterns: list = [
    re_path(r"^admin/seed/?$", admin_ops.SeedView.as_view(), name="admin-seed"),
    re_path(r"^admin/clear/?$", admin_ops.ClearView.as_view(), name="admin-clear"),
    re_path(r"^admin(?:/.*)?$", admin_ops.UnknownAdminView.as_view(), name="admin-unknown"),
]
