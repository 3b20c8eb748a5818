"""Settings, read from the environment with secure defaults.

Everything an operator changes is an environment variable; see the README's
"Configuration" table. Debug is off unless asked for, and without debug a real
secret key is required.
"""

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name, "").strip() or str(default)
    if not value.isdigit() or int(value) < minimum:
        raise ImproperlyConfigured(f"{name}: {value!r} is not a whole number >= {minimum}.")
    return int(value)


def env_ports(name: str) -> list[int]:
    ports: list[int] = []
    for item in env_list(name):
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a port number (1-65535).")
        ports.append(int(item))
    return ports


DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development).")
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "jobscheduler.apps.MongoAdminConfig",
    "jobscheduler.apps.MongoAuthConfig",
    "jobscheduler.apps.MongoContentTypesConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongodb_backend",
    "jobscheduler.apps.MongoAxesConfig",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "jobs",
    "schedules",
    "workers",
    "dashboard",
]
# The demo (seed_demo, demo_receiver, the demo.* tasks) is for local runs and tests only:
# bin/run and the test plugin set JOBSCHEDULER_DEMO=1; production never does.
if env_bool("JOBSCHEDULER_DEMO"):
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "jobscheduler.urls"
WSGI_APPLICATION = "jobscheduler.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- MongoDB: the source of truth --------------------------------------------------------
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/jobscheduler")
_uri_db = urlsplit(MONGODB_URI).path.lstrip("/")
# Retryable writes: pymongo's default (on), or the URI's retryWrites, unless this is set. On for
# a real MongoDB, where a write cut off by a failover is sent once more to the new primary. Off
# for SecantusDB (devtools sets MONGODB_RETRY_WRITES=0 when it starts one): one node has no
# failover to retry across, and 0.7.0b3 keeps a record of every retryable write that makes each
# write cost 4.2 ms instead of 0.5 ms once it holds 10,000 (docs/e2e-benchmark.md).
_retry_writes = {"retryWrites": env_bool("MONGODB_RETRY_WRITES")} if os.environ.get("MONGODB_RETRY_WRITES") else {}
DATABASES = {
    "default": {
        "ENGINE": "django_mongodb_backend",
        "HOST": MONGODB_URI,
        # MONGODB_DB wins over the URI's path so tests and tools can pick a database.
        "NAME": os.environ.get("MONGODB_DB") or _uri_db or "jobscheduler",
        "OPTIONS": {
            "serverSelectionTimeoutMS": int(os.environ.get("MONGODB_TIMEOUT_MS", "5000")),
            # Writes (run records above all) are acknowledged once a majority of a replica set
            # holds them, so a failover never rolls back a recorded run; reads see only what a
            # majority holds, so reconcile never decides on a write a failover could undo. A
            # standalone server treats both as its single node's.
            "w": int(_w) if (_w := os.environ.get("MONGODB_WRITE_CONCERN", "majority")).isdigit() else _w,
            "wTimeoutMS": env_int("MONGODB_WRITE_TIMEOUT_MS", 10_000),
            "readConcernLevel": os.environ.get("MONGODB_READ_CONCERN", "majority"),
            **_retry_writes,
        },
    },
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
MIGRATION_MODULES = {
    "admin": "mongo_migrations.admin",
    "auth": "mongo_migrations.auth",
    "contenttypes": "mongo_migrations.contenttypes",
    "axes": "mongo_migrations.axes",
}

# --- Redis: the rebuildable schedule index -----------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# REDIS_URL names one node of a Redis Cluster (the others are discovered): every process
# (schedulers, workers, the web app, sync_schedules) then uses a cluster client
# (jobscheduler.redis_cluster).
JOBSCHEDULER_REDIS_CLUSTER = env_bool("JOBSCHEDULER_REDIS_CLUSTER")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("JOBSCHEDULER_REDIS_PREFIX", "js"),
        "OPTIONS": {
            "CLIENT_CLASS": "jobscheduler.redis_cluster.ClusterCacheClient"
            if JOBSCHEDULER_REDIS_CLUSTER
            else "django_redis.client.DefaultClient"
        },
    },
}
# Every key the engine writes starts with this, so several deployments (or test runs)
# can share one Redis without touching each other's keys.
JOBSCHEDULER_REDIS_PREFIX = os.environ.get("JOBSCHEDULER_REDIS_PREFIX", "js")
# Shards of the due index (hash-tagged, so a Redis Cluster spreads them). Fix it before
# the first deployment: changing it later needs a sync_schedules into a fresh prefix.
JOBSCHEDULER_SHARDS = int(os.environ.get("JOBSCHEDULER_SHARDS", "16"))
# An occurrence on a day of an exclusion calendar its schedule names is recorded as a skipped
# run naming the calendar (on), or acknowledged with no record at all (off).
JOBSCHEDULER_RECORD_CALENDAR_SKIPS = env_bool("JOBSCHEDULER_RECORD_CALENDAR_SKIPS", True)
# Backfills dispatch past occurrences at most this many a second (a request may ask fewer), and
# cover at most this many occurrences each.
JOBSCHEDULER_BACKFILL_MAX_RATE = float(os.environ.get("JOBSCHEDULER_BACKFILL_MAX_RATE", "20"))
JOBSCHEDULER_BACKFILL_MAX_OCCURRENCES = env_int("JOBSCHEDULER_BACKFILL_MAX_OCCURRENCES", 100_000, minimum=1)
# How long before their due time schedulers advance schedules and stage their occurrences
# (0: at the due time, as one step).
JOBSCHEDULER_STAGE_LEAD_MS = env_int("JOBSCHEDULER_STAGE_LEAD_MS", 200, minimum=0)
# Schedulers and workers ride out a MongoDB or Redis outage of any length: what failed is
# tried again after a wait that doubles up to this many seconds (so at most this long after
# the server is back). Tests shorten it.
JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS = float(os.environ.get("JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS", "10"))

SESSION_ENGINE = "django.contrib.sessions.backends.db"
# AxesStandaloneBackend first: it refuses a locked-out username and address before the
# password is even checked.
AUTHENTICATION_BACKENDS = ["jobscheduler.auth.LoginLockoutBackend", "jobscheduler.auth.ModelBackend"]

# --- Login lockout (django-axes; attempts are records in MongoDB) -----------------------
# After this many failed logins for one username from one address, that pair is locked out
# for the cool-off; a success before then clears the count. Other users and addresses are
# unaffected, so an attacker cannot lock the real admin out from elsewhere.
AXES_FAILURE_LIMIT = env_int("JOBSCHEDULER_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("JOBSCHEDULER_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The same client address the API throttles use (JOBSCHEDULER_TRUSTED_PROXY_COUNT).
AXES_CLIENT_IP_CALLABLE = "jobscheduler.client_address.client_ip"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves what collectstatic gathered here (the image runs it), so gunicorn
# needs no separate static file server.

# Request bodies above this are refused (payload size).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("JOBSCHEDULER_MAX_BODY_BYTES", str(256 * 1024)))

# --- REST API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "jobscheduler.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("JOBSCHEDULER_THROTTLE_ANON", "60/min"),
        "user": os.environ.get("JOBSCHEDULER_THROTTLE_USER", "6000/min"),
        "preview": os.environ.get("JOBSCHEDULER_THROTTLE_PREVIEW", "60/min"),
    },
    "EXCEPTION_HANDLER": "jobscheduler.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "jobscheduler API",
    "DESCRIPTION": "Jobs, schedules and runs of the jobscheduler service.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobscheduler.api.document_error_responses",
        "jobs.serializers.target_shapes_any_of",
    ],
    "SERVE_PERMISSIONS": ["jobscheduler.api.ApiDocsPermission"],
}
# /api/schema/ and /api/docs/ for anyone (on) or signed-in users only (off, the default): the
# schema maps every endpoint and parameter for a scanner, and the API's users have a login.
JOBSCHEDULER_PUBLIC_API_DOCS = env_bool("JOBSCHEDULER_PUBLIC_API_DOCS")
# When set, /metrics answers only "Authorization: Bearer <this>" (401 otherwise); unset, it is
# open to whoever reaches it (keep it off the public network, as most Prometheus setups do).
JOBSCHEDULER_METRICS_TOKEN = os.environ.get("JOBSCHEDULER_METRICS_TOKEN", "")

# --- Security when not debugging ---------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)

# --- HTTPS in production, and the proxy in front -------------------------------------------
# Off by default: only the operator knows the service is reached over https (a redirect loop
# or a year of HSTS on a plain-http install is worse than nothing). `check --deploy` says so.
SECURE_SSL_REDIRECT = env_bool("JOBSCHEDULER_SECURE_SSL_REDIRECT")
# Probes and scrapes dial the container over plain http (compose's healthcheck, kubelets,
# Prometheus); they stay unredirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("JOBSCHEDULER_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("JOBSCHEDULER_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("JOBSCHEDULER_HSTS_PRELOAD")
# The header a TLS-terminating proxy sets to "https" (e.g. X-Forwarded-Proto). Set it only
# when that proxy always sets or overwrites it: a client could send it too.
_proxy_ssl_header = os.environ.get("JOBSCHEDULER_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header and not re.fullmatch(r"[A-Za-z0-9-]+", _proxy_ssl_header):
    raise ImproperlyConfigured(f"JOBSCHEDULER_PROXY_SSL_HEADER: {_proxy_ssl_header!r} is not a header name.")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
# Proxies in front that append to X-Forwarded-For. 0 (default): the header is ignored and the
# client is the connection's address; N: the N-th address from the right, the one the
# outermost trusted proxy saw. Throttles (DRF's NUM_PROXIES) and the admin login's lockout
# (jobscheduler.client_address) both read it.
JOBSCHEDULER_TRUSTED_PROXY_COUNT = env_int("JOBSCHEDULER_TRUSTED_PROXY_COUNT", 0)
REST_FRAMEWORK["NUM_PROXIES"] = JOBSCHEDULER_TRUSTED_PROXY_COUNT

# --- Logging: one JSON object per line ---------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "jobscheduler.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("JOBSCHEDULER_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Webhooks (http targets) -------------------------------------------------------------
# Hosts webhooks may reach although they are loopback, private, link-local or otherwise not
# public: host names (".example.com" for the domain and its subdomains; every address the
# name resolves to is then trusted) or CIDR networks ("10.1.0.0/16", "127.0.0.1"). Empty:
# public addresses only.
# Cloud metadata, link-local and unspecified addresses stay refused whatever this names.
JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = env_list("JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS")
# Ports webhooks may go to (checked when a job is saved and at each delivery); empty: any.
JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS = env_ports("JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS")
# When a webhook job's secret is replaced (rotate-secret, or a new one set), the old one keeps
# signing deliveries beside the new for this long, so receivers can switch without a gap.
JOBSCHEDULER_WEBHOOK_SECRET_OVERLAP_HOURS = float(os.environ.get("JOBSCHEDULER_WEBHOOK_SECRET_OVERLAP_HOURS", "24"))
# How much of a receiver's response body a run keeps, in characters (at most 4 bytes each are read).
JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS = int(os.environ.get("JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS", "2000"))
# A PEM CA bundle that verifies https receivers instead of the system's (e.g. an internal CA).
JOBSCHEDULER_WEBHOOK_CA_FILE = os.environ.get("JOBSCHEDULER_WEBHOOK_CA_FILE", "")

# Management commands jobs may run (command targets) and the arguments each may take: a JSON
# object {"purge_runs": {"--days": {"type": "int", "min": 7}}, "clearsessions": []}, or
# comma-separated names, each then allowed without arguments. See jobs/targets/command.py.
JOBSCHEDULER_ALLOWED_COMMANDS = os.environ.get("JOBSCHEDULER_ALLOWED_COMMANDS", "")

# Celery targets (jobs/targets/celery.py) send tasks to the team's existing Celery workers:
# through this broker, or through the project's own Celery app when JOBSCHEDULER_CELERY_APP
# names one ("proj.celery.app" or "proj.celery:app"; its broker, result backend and routes
# are used, the two URLs here are not). With a result backend, workers record each task's
# outcome when it finishes; without one, a run records the hand-off only.
JOBSCHEDULER_CELERY_BROKER_URL = os.environ.get("JOBSCHEDULER_CELERY_BROKER_URL", "")
JOBSCHEDULER_CELERY_RESULT_BACKEND = os.environ.get("JOBSCHEDULER_CELERY_RESULT_BACKEND", "")
JOBSCHEDULER_CELERY_APP = os.environ.get("JOBSCHEDULER_CELERY_APP", "")
# More Celery configuration for the app built from the URLs, as a JSON object of Celery
# setting names (e.g. {"broker_transport_options": {"global_keyprefix": "team:"}}).
try:
    JOBSCHEDULER_CELERY_CONFIG: dict[str, object] = json.loads(os.environ.get("JOBSCHEDULER_CELERY_CONFIG") or "{}")
except ValueError as _error:
    raise ImproperlyConfigured(f"JOBSCHEDULER_CELERY_CONFIG is not JSON: {_error}") from None
if not isinstance(JOBSCHEDULER_CELERY_CONFIG, dict):
    raise ImproperlyConfigured("JOBSCHEDULER_CELERY_CONFIG must be a JSON object.")

# Per-owner limits (superusers are not limited): jobs and schedules one owner may have (0: no
# limit), and the shortest time between two occurrences of a schedule, in seconds.
JOBSCHEDULER_MAX_JOBS_PER_OWNER = int(os.environ.get("JOBSCHEDULER_MAX_JOBS_PER_OWNER", "1000"))
JOBSCHEDULER_MAX_SCHEDULES_PER_OWNER = int(os.environ.get("JOBSCHEDULER_MAX_SCHEDULES_PER_OWNER", "10000"))
JOBSCHEDULER_MIN_INTERVAL_SECONDS = int(os.environ.get("JOBSCHEDULER_MIN_INTERVAL_SECONDS", "1"))

# --- Django Tasks (jobs.tasks_api): task.enqueue() makes a run on our workers --------------
# See jobs/tasks_backend.py and the README's "Using Django Tasks". QUEUES are the queue names
# tasks may use (run_worker --queue picks which a worker serves); OPTIONS are the settings of
# the job each enqueued task's runs belong to when it is first created (edit the job after).
TASKS = {
    "default": {
        "BACKEND": "jobs.tasks_backend.RunQueueBackend",
        "QUEUES": env_list("JOBSCHEDULER_TASK_QUEUES", "default"),
        "OPTIONS": {
            "MAX_ATTEMPTS": env_int("JOBSCHEDULER_TASK_MAX_ATTEMPTS", 1, minimum=1),
            "RETRY_BACKOFF_SECONDS": env_int("JOBSCHEDULER_TASK_RETRY_BACKOFF_SECONDS", 10),
            "TIMEOUT_SECONDS": env_int("JOBSCHEDULER_TASK_TIMEOUT_SECONDS", 300, minimum=1),
        },
    }
}
# --- Schedules declared in code (schedules/declarations.py) ------------------------------
# Besides @periodic on a Django Task: declarations by name, as celery beat's beat_schedule,
# e.g. {"nightly-report": {"task": "reports.tasks.send", "cron": "0 2 * * *", "timezone": "Europe/London"}}.
JOBSCHEDULER_TASK_SCHEDULES: dict[str, dict[str, object]] = {}
# The user that owns their jobs; made if missing, as a superuser that cannot sign in.
JOBSCHEDULER_CODE_OWNER = os.environ.get("JOBSCHEDULER_CODE_OWNER", "jobscheduler-code")

# --- Workers (run_worker) and run history ------------------------------------------------
# Run processes (python and command targets) see only an allow-list of the worker's
# environment (workers/isolation.py); these names are passed on too, e.g. DJANGO_SECRET_KEY
# for tasks that sign things the web app checks.
JOBSCHEDULER_CHILD_ENV = env_list("JOBSCHEDULER_CHILD_ENV")
# Runs one worker process executes at once (each python/command run in its own child process).
JOBSCHEDULER_WORKER_CONCURRENCY = int(os.environ.get("JOBSCHEDULER_WORKER_CONCURRENCY", "16"))
# Run processes one worker keeps for python and command targets (webhooks need none).
JOBSCHEDULER_WORKER_PROCESSES = int(os.environ.get("JOBSCHEDULER_WORKER_PROCESSES", "4"))
# A run whose worker showed no sign of life for this long is taken over by another worker.
JOBSCHEDULER_WORKER_TAKEOVER_SECONDS = float(os.environ.get("JOBSCHEDULER_WORKER_TAKEOVER_SECONDS", "30"))
# How many times one occurrence's run is taken over before it is left failed.
JOBSCHEDULER_WORKER_MAX_TAKEOVERS = int(os.environ.get("JOBSCHEDULER_WORKER_MAX_TAKEOVERS", "3"))
# The longest wait between two attempts, whatever the backoff says.
JOBSCHEDULER_WORKER_RETRY_CAP_SECONDS = float(os.environ.get("JOBSCHEDULER_WORKER_RETRY_CAP_SECONDS", "3600"))
# How much of a run's output (return value, command output) and error a run record keeps.
JOBSCHEDULER_RUN_OUTPUT_CHARS = int(os.environ.get("JOBSCHEDULER_RUN_OUTPUT_CHARS", "4000"))
# Finished runs are kept this many days: purge_runs's default, and, while the TTL is on, the
# runs' TTL index deletes them once they are older (jobs/retention.py; set at every migrate).
JOBSCHEDULER_RUN_RETENTION_DAYS = env_int("JOBSCHEDULER_RUN_RETENTION_DAYS", 30)
# Off by default: an upgrade must not start deleting a deployment's run history on its own.
JOBSCHEDULER_RUN_RETENTION_TTL = env_bool("JOBSCHEDULER_RUN_RETENTION_TTL", False)
