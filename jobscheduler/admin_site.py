"""The admin site, branded for jobscheduler."""

from django.contrib import admin


class JobSchedulerAdminSite(admin.AdminSite):
    site_header = "jobscheduler"
    site_title = "jobscheduler admin"
    index_title = "Jobs, schedules and runs"
