"""The demo app's pages (installed with JOBSCHEDULER_DEMO=1 only)."""

from django.urls import path

from demo import views

urlpatterns = [
    path("hello/", views.enqueue_hello, name="demo-hello"),
    path("hello/<path:result_id>/", views.hello_result, name="demo-hello-result"),
]
