"""URL routes: admin (its dashboard's data included), API, docs and health."""

from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from dashboard import views as dashboard_views
from jobs.views import JobViewSet, RunViewSet
from jobscheduler import health
from schedules.views import BackfillViewSet, CalendarViewSet, ScheduleViewSet

router = DefaultRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("calendars", CalendarViewSet, basename="calendar")
router.register("backfills", BackfillViewSet, basename="backfill")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    # What the admin index's dashboard polls; staff only, as the admin itself.
    path("admin/dashboard/data/", admin.site.admin_view(dashboard_views.data), name="dashboard-data"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include(router.urls)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
]

# The demo app's pages (a Django Task enqueued from a view), where the demo app is installed.
if apps.is_installed("demo"):
    urlpatterns.append(path("demo/", include("demo.urls")))
