"""Django's contrib apps configured with ObjectId primary keys for MongoDB."""

from axes.apps import AppConfig as AxesConfig
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.apps import AuthConfig
from django.contrib.contenttypes.apps import ContentTypesConfig

OBJECT_ID_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"


class MongoAdminConfig(AdminConfig):
    default_auto_field = OBJECT_ID_FIELD
    default_site = "jobscheduler.admin_site.JobSchedulerAdminSite"


class MongoAuthConfig(AuthConfig):
    default_auto_field = OBJECT_ID_FIELD


class MongoContentTypesConfig(ContentTypesConfig):
    default_auto_field = OBJECT_ID_FIELD


class MongoAxesConfig(AxesConfig):
    """django-axes (the admin login's lockout), its attempts stored in MongoDB."""

    default_auto_field = OBJECT_ID_FIELD
