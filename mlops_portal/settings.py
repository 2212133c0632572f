"""Portal settings. Everything that differs between machines comes from the environment.

PORTAL_MODE=production switches on the hardened settings that `manage.py check --deploy` asks for.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import check_production_secret_key, env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

PORTAL_MODE = env_str("PORTAL_MODE", "development")
if PORTAL_MODE not in {"development", "production"}:
    raise ImproperlyConfigured(f"PORTAL_MODE must be 'development' or 'production', got {PORTAL_MODE!r}")
PRODUCTION = PORTAL_MODE == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
DEVELOPMENT_SECRET_KEY = "dev-only-key-not-for-production-0123456789-abcdefghijklmnopqrstuvwxyz"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when PORTAL_MODE=production")
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
if PRODUCTION:
    # Refused here rather than as a check --deploy warning: production must not start with it.
    check_production_secret_key(SECRET_KEY, development_key=DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "apps.core.admin_site.PortalAdminConfig",  # django.contrib.admin, branded and ordered by workflow
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "apps.core",
    "apps.datasets",
    "apps.frameworks",
    "apps.training",
    "apps.registry",
    "apps.tuning",
    "apps.deployments",
    "apps.monitoring",
    "apps.dashboard",
    "apps.delivery",
    "apps.alerts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.HostileInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mlops_portal.urls"
WSGI_APPLICATION = "mlops_portal.wsgi.application"
ASGI_APPLICATION = "mlops_portal.asgi.application"

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

# Database: SQLite by default so `make run` needs nothing; PostgreSQL through DATABASE_URL.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
# Parallel test sessions (several developers on one machine) each take their own test database.
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mlops",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "mlops-ch"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files: the built dashboard (frontend2/dist) is served by WhiteNoise, no separate server.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
FRONTEND_DIST = BASE_DIR / "frontend2" / "dist"
STATICFILES_DIRS = [FRONTEND_DIST] if FRONTEND_DIST.exists() else []
WHITENOISE_USE_FINDERS = not PRODUCTION

# Artifact storage: local media folder unless an S3 bucket is configured.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    _artifact_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "location": env_str("AWS_LOCATION", "mlops"),
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": True,
        },
    }
else:
    _artifact_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": _artifact_storage,
    "artifacts": _artifact_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Uploads stream to temporary files above this size instead of sitting in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
# Any request body over this (dataset uploads: DATASET_UPLOAD_MAX_BYTES) is a 413 before it is read.
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE)
# Slow clients (mlops_portal/slowclients.py): headers must be complete within this from the first byte
# (or from connecting), and a body may not pause longer than this between two pieces (then 408).
REQUEST_HEADER_TIMEOUT_S = env_float("REQUEST_HEADER_TIMEOUT_S", 10.0)
REQUEST_BODY_TIMEOUT_S = env_float("REQUEST_BODY_TIMEOUT_S", 30.0)
# The gRPC V2 process (mlops_portal/grpc_serve.py): the same bound on a message as on an HTTP body.
GRPC_MAX_MESSAGE_BYTES = env_int("GRPC_MAX_MESSAGE_BYTES", REQUEST_BODY_MAX_BYTES)
GRPC_THREADS = env_int("GRPC_THREADS", 8)
DATASET_UPLOAD_MAX_BYTES = env_int("DATASET_UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
# Per dataset version, checked while an upload is decompressed and read, before anything is stored: a
# small file can hold a huge table (Parquet metadata, gzip/zip). 1M rows x 10 columns is years of daily
# bars for hundreds of tickers; more belongs in a warehouse, not in a web process's memory.
DATASET_MAX_ROWS = env_int("DATASET_MAX_ROWS", 1_000_000)
DATASET_MAX_COLUMNS = env_int("DATASET_MAX_COLUMNS", 1_000)
DATASET_MAX_CELLS = env_int("DATASET_MAX_CELLS", 10_000_000)
DATASET_MAX_DECOMPRESSED_BYTES = env_int("DATASET_MAX_DECOMPRESSED_BYTES", 256 * 1024 * 1024)
# JSON request bodies nested deeper than this are refused with a 400 before they are parsed.
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 64)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.core.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.core.permissions.IsAnalystOrStaff"],
    # JSON nested past API_JSON_MAX_DEPTH is a 400 before it is parsed, a NUL in any key or string of a
    # JSON or form body a 400 naming the field, a JSON body past DATA_UPLOAD_MAX_MEMORY_SIZE a 413.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "apps.core.parsers.FormParser",
        "apps.core.parsers.MultiPartParser",
    ],
    # drf-spectacular's, plus the error statuses and bodies every operation can answer.
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.PortalAutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "100000/minute"),
        "predict": env_str("API_THROTTLE_PREDICT", "60000/minute"),
    },
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps portal API",
    "DESCRIPTION": "Datasets, training, tuning, registry, deployments and predictions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from our own static files: a CDN is unreachable on offline hosts.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several apps have a "status"; name each choice set after its domain.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "apps.training.choices.RunStatus",
        "RolloutStatusEnum": "apps.deployments.choices.RolloutStatus",
        "GateStateEnum": "apps.deployments.choices.GateState",
        "PredictionStatusEnum": "apps.monitoring.choices.PredictionStatus",
        "StudyStatusEnum": "apps.tuning.choices.StudyStatus",
        "TrialStatusEnum": "apps.tuning.choices.TrialStatus",
        "DirectionEnum": "apps.training.choices.Direction",
        "EvaluationStatusEnum": "apps.delivery.choices.EvaluationStatus",
    },
    # What the URL converters accept, so a generated client (and the schema fuzz test) sends paths
    # that route: anything else is a 404 before any view runs.
    "PATH_CONVERTER_OVERRIDES": {
        "int": {"type": "integer", "minimum": 0},
        "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    },
}

# Prometheus may scrape /metrics from these addresses/networks without a token (comma-separated).
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])

# Prediction logs: each process buffers its answers in memory and one writer thread inserts them
# into the database (apps/monitoring/services/logwriter.py). The buffer keeps lines through a
# database outage up to this many per process (~2 KB each for the demo's 8-feature lines: 50,000
# ≈ 100 MB, 50 s of a 1,000 answers/s process), then drops new ones, counted and logged; on
# SIGTERM the writer has PREDICTION_LOG_SHUTDOWN_S to store what is left.
PREDICTION_LOG_BUFFER_MAX = env_int("PREDICTION_LOG_BUFFER_MAX", 50_000)
PREDICTION_LOG_SHUTDOWN_S = env_int("PREDICTION_LOG_SHUTDOWN_S", 10)

# API tokens live this long unless created with another lifetime.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 365)
# How long a web process trusts a verified token on the prediction path before asking the database
# again: the most a revoked token, a deactivated user or a removed role keeps working there.
DEPLOYMENTS_AUTH_CACHE_MS = env_int("DEPLOYMENTS_AUTH_CACHE_MS", 1000)

# Model-type plugins beyond installed packages' `mlops_portal.model_types` entry points: dotted module
# paths, each holding ModelType subclasses (README "Bring your own model").
MODEL_TYPE_PLUGINS = env_list("MODEL_TYPE_PLUGINS", [])

# Celery: queues default / cpu / gpu; training tasks opt into acks_late on their decorators.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)
CELERY_TASK_MAX_ATTEMPTS = env_int("CELERY_TASK_MAX_ATTEMPTS", 3)
# No CELERY_TASK_ALWAYS_EAGER: services queue tasks by name (send_task), which eager mode does not
# run inline, and a training run inside a web request is not a mode the portal supports.
# Housekeeping has a queue and a worker of its own (Procfile `housekeeping`): two long training runs
# on the cpu worker must never hold up the log flush, the reaper, the gates, the study keeper or a
# schedule tick. Beat's PeriodicTask rows name this queue too (training migration 0005); the routes
# cover calls that name no queue. Training goes to TRAINING_CPU_QUEUE / TRAINING_GPU_QUEUE.
HOUSEKEEPING_QUEUE = "housekeeping"
HOUSEKEEPING_TASKS = (
    "monitoring.flush_prediction_logs",
    "training.reap_stale_runs",
    "training.remove_orphaned_folders",
    "training.retrain_experiment",
    "deployments.evaluate_rollouts",
    "tuning.keep_studies",
    "delivery.reap_lost_evaluations",
    "delivery.archive_undeployed_versions",
    "core.ping",
    "celery.backend_cleanup",
)
CELERY_TASK_ROUTES = {name: {"queue": HOUSEKEEPING_QUEUE} for name in HOUSEKEEPING_TASKS}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

# Monitoring (issue 12): raw prediction logs and feedback are kept this many days (the rollups are
# what windows, gates, the dashboard and /metrics read); the per-minute rollups this many. Drift
# thresholds are PSI values: 0.1 warns, 0.25 alerts (the usual reading of PSI).
MONITORING_RAW_RETENTION_DAYS = env_int("MONITORING_RAW_RETENTION_DAYS", 14)
MONITORING_ROLLUP_RETENTION_DAYS = env_int("MONITORING_ROLLUP_RETENTION_DAYS", 400)
MONITORING_RETENTION_BATCH = env_int("MONITORING_RETENTION_BATCH", 5000)
MONITORING_DRIFT_WARN_PSI = 0.1
MONITORING_DRIFT_ALERT_PSI = 0.25
HOUSEKEEPING_TASKS += ("monitoring.prune_old_rows",)
CELERY_TASK_ROUTES["monitoring.prune_old_rows"] = {"queue": HOUSEKEEPING_QUEUE}

# Alerts (issue 12): rules checked every minute by beat, their events POSTed to webhooks, both on
# the housekeeping queue so a webhook that hangs never holds up training.
HOUSEKEEPING_TASKS += ("alerts.evaluate_rules", "alerts.deliver")
CELERY_TASK_ROUTES.update({name: {"queue": HOUSEKEEPING_QUEUE} for name in ("alerts.evaluate_rules", "alerts.deliver")})
