"""The admin site, branded for jobscheduler; its index is the operations dashboard (the dashboard app)."""

from django.contrib import admin


class JobSchedulerAdminSite(admin.AdminSite):
    site_header = "jobscheduler"
    site_title = "jobscheduler admin"
    index_title = "Operations"
    # The dashboard app's template: the live dashboard above the app list. Named, not
    # imported, so the plumbing does not depend on the app above it.
    index_template = "dashboard/admin_index.html"
