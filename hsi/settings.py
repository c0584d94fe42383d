"""HSI settings: everything comes from the environment (CONTRACT §7).

Values are read once, when this module is imported. Invalid values raise ``ImproperlyConfigured`` naming the
variable. Nothing else in the project reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hsi.env import env_bool, env_choice, env_float, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
HSI_VERSION = "0.1.0"

# --- Core ----------------------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG=true")
    SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

HSI_DATA_DIR = Path(env_str("HSI_DATA_DIR", "./data")).expanduser().resolve()
FOSCAM_BASE_PATH = Path(env_str("FOSCAM_BASE_PATH", "/export/foscam")).expanduser()
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")

# --- Database ------------------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
if DATABASE_URL:
    try:
        _default_db = dj_database_url.parse(DATABASE_URL, conn_max_age=DATABASE_CONN_MAX_AGE, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if _default_db["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured("DATABASE_URL must be postgres://, postgresql:// or sqlite:///path")
else:
    _default_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(HSI_DATA_DIR / "hsi.sqlite3")}
if _default_db["ENGINE"] == "django.db.backends.postgresql":
    # Server-side parameters plus psycopg's automatic prepared statements: a list query is planned once per
    # connection instead of on every request (planning the events page costs more than running it). Set
    # DATABASE_PREPARE_THRESHOLD=0 behind a transaction-pooling proxy such as PgBouncer.
    _prepare_threshold = env_int("DATABASE_PREPARE_THRESHOLD", 5, minimum=0)
    _default_db["OPTIONS"] = {}
    if _prepare_threshold:
        _default_db["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": _prepare_threshold}
    if DATABASE_CONN_MAX_AGE:
        # Connections are kept by psycopg's pool, not by Django's persistent connections: under ASGI every request
        # runs in a thread of its own, so a persistent connection stays behind with each finished thread (a web
        # process piled up dozens of idle connections). DATABASE_CONN_MAX_AGE becomes the pooled connections'
        # lifetime; 0 turns pooling off (a connection per request).
        _default_db["CONN_MAX_AGE"] = 0
        _default_db["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1),
            "max_lifetime": DATABASE_CONN_MAX_AGE,
            "timeout": 10,
        }
if _default_db["ENGINE"] == "django.db.backends.sqlite3":
    _default_db["CONN_MAX_AGE"] = 0
    _default_db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 5,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
    }
    _default_db.setdefault("TEST", {})["NAME"] = None  # in-memory for tests of the SQLite path
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, channel layer, Celery -------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# Internal: isolates keys of parallel test workers or several installs sharing one Redis.
HSI_KEY_PREFIX = env_str("HSI_KEY_PREFIX", "hsi")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "hsi.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": HSI_KEY_PREFIX,
            "TIMEOUT": 300,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{HSI_KEY_PREFIX}:asgi", "capacity": 1000, "expiry": 60},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hsi"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

REALTIME_SEND_TIMEOUT_SECONDS = env_float("REALTIME_SEND_TIMEOUT_SECONDS", 5.0, minimum=0.01)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep LOGGING's handlers (LogEntry rows) in workers too
CELERY_TASK_TIME_LIMIT = 900
CELERY_TASK_SOFT_TIME_LIMIT = 840
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 1200,
    "global_keyprefix": f"{HSI_KEY_PREFIX}:celery:",
    "unacked_restore_interval": 10,
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TIMEZONE = TIME_ZONE
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {
    "pipeline.process_file": {"queue": "detection"},
    "pipeline.process_files": {"queue": "detection"},
    "pipeline.analyze_batch": {"queue": "analysis"},
    "alerts.*": {"queue": "notifications"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Applications --------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "channels",
    "cameras",
    "events",
    "alerts",
    "media_serving",
    "pipeline",
    "system",
]

MIDDLEWARE = [
    "hsi.middleware.RequestIdMiddleware",
    "hsi.middleware.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "hsi.middleware.ApiResponseHeadersMiddleware",
    "hsi.throttle.ThrottleMiddleware",  # before auth: key guessing is throttled too (CONTRACT §6.2)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "hsi.middleware.ApiKeyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hsi.urls"
ASGI_APPLICATION = "hsi.asgi.application"
WSGI_APPLICATION = None
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
STATIC_ROOT = HSI_DATA_DIR / "static"

# JSON bodies over 1 MiB are 413 (CONTRACT §0.4).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- REST framework ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["hsi.api.parsers.LimitedJSONParser"],
    # Authentication is done once, for every /api/ path, by hsi.middleware.ApiKeyMiddleware (CONTRACT §6.1).
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "hsi.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [],
    "COERCE_DECIMAL_TO_STRING": False,
    "DATETIME_FORMAT": "iso-8601",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Home Security Intelligence API",
    "VERSION": HSI_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Shared problem+json error responses, X-Request-ID and the API-key security scheme (hsi/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "hsi.api.schema.document_problem_responses",
    ],
    # ``check --deploy`` is about deployment settings; drf-spectacular would add a full schema generation and its
    # documentation hints (views without a serializer_class) to it. /api/schema itself is tested.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
}

# --- Security (CONTRACT §6) ----------------------------------------------------------------------------------
API_KEY_ENABLED = env_bool("API_KEY_ENABLED", False)
API_KEYS = env_str("API_KEYS", "")
METRICS_REQUIRE_API_KEY = env_bool("METRICS_REQUIRE_API_KEY", False)
ADMIN_API_ENABLED = env_bool("ADMIN_API_ENABLED", False)
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "127.0.0.1,::1")
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES entry {_proxy!r} is not an IP address or CIDR") from None
THROTTLE_ENABLED = env_bool("THROTTLE_ENABLED", True)
THROTTLE_DEFAULT_RATE = env_rate("THROTTLE_DEFAULT_RATE", "60/min")
THROTTLE_MEDIA_RATE = env_rate("THROTTLE_MEDIA_RATE", "120/min")
THROTTLE_SEARCH_RATE = env_rate("THROTTLE_SEARCH_RATE", "30/min")
THROTTLE_WEBSOCKET_RATE = env_rate("THROTTLE_WEBSOCKET_RATE", "10/min")
CORS_ALLOWED_ORIGINS_RAW = env_list("CORS_ALLOWED_ORIGINS", "http://localhost:3000,http://localhost:5173")
if "*" in CORS_ALLOWED_ORIGINS_RAW:
    CORS_ALLOW_ALL_ORIGINS = True
    CORS_ALLOW_CREDENTIALS = False
else:
    CORS_ALLOWED_ORIGINS = CORS_ALLOWED_ORIGINS_RAW
    CORS_ALLOW_CREDENTIALS = True
CORS_EXPOSE_HEADERS = ["Content-Disposition", "Content-Range", "Retry-After", "X-Request-ID", "X-Export-Truncated"]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "origin",
    "user-agent",
    "x-api-key",
    "x-csrftoken",
    "x-request-id",
    "x-requested-with",
]
CORS_ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_PREFLIGHT_MAX_AGE = 600
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
# HTTPS deployments (README "Production settings"). All off by default: the all-in-one serves plain http on
# localhost. Declaring the site https-only (a redirect or HSTS) makes the session and CSRF cookies secure-only.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health/?$", r"^ready/?$"]  # container health checks probe plain http
# Behind a TLS-terminating proxy Django sees plain http: name the header the proxy sets (X-Forwarded-Proto), and
# make sure the proxy overwrites it, since a client reaching the server directly could send it too.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.strip().upper().replace("-", "_"), "https")
_https_only = SECURE_SSL_REDIRECT or SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _https_only)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _https_only)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SAMESITE = "Lax"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Pipeline (CONTRACT §4) ----------------------------------------------------------------------------------
AUTO_CREATE_CAMERAS = env_bool("AUTO_CREATE_CAMERAS", True)
WATCHER_MODE = env_choice("WATCHER_MODE", "auto", ("auto", "native", "polling"))
WATCHER_POLL_INTERVAL_SECONDS = env_float("WATCHER_POLL_INTERVAL_SECONDS", 1.0, minimum=0.05)
WATCHER_DEBOUNCE_SECONDS = env_float("WATCHER_DEBOUNCE_SECONDS", 0.5, minimum=0)
FILE_STABILITY_SECONDS = env_float("FILE_STABILITY_SECONDS", 2.0, minimum=0)
FILE_STABILITY_TIMEOUT_SECONDS = env_float("FILE_STABILITY_TIMEOUT_SECONDS", 30, minimum=0)
WATCHER_BACKFILL_MINUTES = env_int("WATCHER_BACKFILL_MINUTES", 10, minimum=0)
WATCHER_RESCAN_SECONDS = env_int("WATCHER_RESCAN_SECONDS", 60, minimum=1)
MIN_IMAGE_BYTES = env_int("MIN_IMAGE_BYTES", 10240, minimum=0)
MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 26214400, minimum=1)
MAX_VIDEO_BYTES = env_int("MAX_VIDEO_BYTES", 1073741824, minimum=1)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50000000, minimum=1)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 26214400, minimum=1)
DEDUP_CACHE_TTL_SECONDS = env_int("DEDUP_CACHE_TTL_SECONDS", 3600, minimum=0)
VIDEO_FRAME_INTERVAL_SECONDS = env_float("VIDEO_FRAME_INTERVAL_SECONDS", 2.0, minimum=0.01)
VIDEO_MAX_FRAMES = env_int("VIDEO_MAX_FRAMES", 30, minimum=1)
VIDEO_MAX_DETECTIONS_PER_CLASS = env_int("VIDEO_MAX_DETECTIONS_PER_CLASS", 5, minimum=1)
DETECTOR_BACKEND = env_choice("DETECTOR_BACKEND", "auto", ("auto", "http", "onnx", "opencv"))
DETECTOR_URL = env_str("DETECTOR_URL")
DETECTOR_API_KEY = env_str("DETECTOR_API_KEY")
DETECTOR_TIMEOUT_SECONDS = env_float("DETECTOR_TIMEOUT_SECONDS", 30, minimum=0.1)
DETECTOR_ONNX_PATH = env_str("DETECTOR_ONNX_PATH")
DETECTOR_ONNX_LABELS = env_str("DETECTOR_ONNX_LABELS")
DETECTOR_ONNX_FORMAT = env_choice("DETECTOR_ONNX_FORMAT", "auto", ("auto", "yolov8", "yolov5", "e2e"))
DETECTOR_ONNX_INPUT_SIZE = env_int("DETECTOR_ONNX_INPUT_SIZE", 640, minimum=32)
DETECTOR_NMS_IOU = env_float("DETECTOR_NMS_IOU", 0.45, minimum=0, maximum=1)
DETECTOR_EMBEDDED_MOTION = env_bool("DETECTOR_EMBEDDED_MOTION", True)
DETECTION_CONFIDENCE_THRESHOLD = env_float("DETECTION_CONFIDENCE_THRESHOLD", 0.5, minimum=0, maximum=1)
LLM_BACKEND = env_choice("LLM_BACKEND", "auto", ("auto", "llamacpp", "openai", "rules"))
LLM_URL = env_str("LLM_URL")
LLM_MODEL = env_str("LLM_MODEL", "")
LLM_API_KEY = env_str("LLM_API_KEY")
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 120, minimum=0.1)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 3, minimum=0)
LLM_TEMPERATURE = env_float("LLM_TEMPERATURE", 0.3, minimum=0)
LLM_TOP_P = env_float("LLM_TOP_P", 0.95, minimum=0, maximum=1)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 1536, minimum=1)
LLM_MAX_PROMPT_CHARS = env_int("LLM_MAX_PROMPT_CHARS", 12000, minimum=500)
BATCH_WINDOW_SECONDS = env_float("BATCH_WINDOW_SECONDS", 90, minimum=1)
BATCH_IDLE_TIMEOUT_SECONDS = env_float("BATCH_IDLE_TIMEOUT_SECONDS", 30, minimum=1)
BATCH_MAX_DETECTIONS = env_int("BATCH_MAX_DETECTIONS", 50, minimum=1)
BATCH_CHECK_INTERVAL_SECONDS = env_float("BATCH_CHECK_INTERVAL_SECONDS", 5, minimum=0.1)
FAST_PATH_ENABLED = env_bool("FAST_PATH_ENABLED", True)
FAST_PATH_CONFIDENCE_THRESHOLD = env_float("FAST_PATH_CONFIDENCE_THRESHOLD", 0.90, minimum=0, maximum=1)
FAST_PATH_OBJECT_TYPES = [t.lower() for t in env_list("FAST_PATH_OBJECT_TYPES", "person")]
FAST_PATH_COOLDOWN_SECONDS = env_float("FAST_PATH_COOLDOWN_SECONDS", 90, minimum=0)
ANALYSIS_STUCK_SECONDS = env_int("ANALYSIS_STUCK_SECONDS", 600, minimum=1)
FILE_STUCK_SECONDS = env_int("FILE_STUCK_SECONDS", 120, minimum=1)
SEVERITY_LOW_MAX = env_int("SEVERITY_LOW_MAX", 29)
SEVERITY_MEDIUM_MAX = env_int("SEVERITY_MEDIUM_MAX", 59)
SEVERITY_HIGH_MAX = env_int("SEVERITY_HIGH_MAX", 84)
if not 0 <= SEVERITY_LOW_MAX < SEVERITY_MEDIUM_MAX < SEVERITY_HIGH_MAX < 100:
    raise ImproperlyConfigured(
        "SEVERITY_LOW_MAX, SEVERITY_MEDIUM_MAX and SEVERITY_HIGH_MAX must satisfy 0 <= low < medium < high < 100"
    )
PIPELINE_MAX_RETRIES = env_int("PIPELINE_MAX_RETRIES", 3, minimum=0)
# A burst the watcher hands over at once is processed in chunks of up to this many files per task
# (``pipeline.process_files``: one transaction per chunk); 1 turns coalescing off.
PIPELINE_CHUNK_FILES = env_int("PIPELINE_CHUNK_FILES", 16, minimum=1, maximum=200)
RETRY_BASE_DELAY_SECONDS = env_float("RETRY_BASE_DELAY_SECONDS", 1.0, minimum=0)
RETRY_MAX_DELAY_SECONDS = env_float("RETRY_MAX_DELAY_SECONDS", 30, minimum=0)
RETRY_JITTER = env_float("RETRY_JITTER", 0.25, minimum=0)
CIRCUIT_FAILURE_THRESHOLD = env_int("CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1)
CIRCUIT_RECOVERY_SECONDS = env_float("CIRCUIT_RECOVERY_SECONDS", 30, minimum=0)
THUMBNAIL_WIDTH = env_int("THUMBNAIL_WIDTH", 320, minimum=16)
THUMBNAIL_HEIGHT = env_int("THUMBNAIL_HEIGHT", 240, minimum=16)
THUMBNAIL_QUALITY = env_int("THUMBNAIL_QUALITY", 85, minimum=1, maximum=100)
REID_ENABLED = env_bool("REID_ENABLED", True)
REID_SIMILARITY_THRESHOLD = env_float("REID_SIMILARITY_THRESHOLD", 0.85, minimum=0, maximum=1)
REID_WINDOW_HOURS = env_float("REID_WINDOW_HOURS", 24, minimum=0)
BASELINE_WINDOW_DAYS = env_int("BASELINE_WINDOW_DAYS", 28, minimum=7)
if BASELINE_WINDOW_DAYS % 7:
    raise ImproperlyConfigured("BASELINE_WINDOW_DAYS must be a multiple of 7")
BASELINE_MIN_DAYS = env_int("BASELINE_MIN_DAYS", 7, minimum=1)
BASELINE_ANOMALY_THRESHOLD = env_float("BASELINE_ANOMALY_THRESHOLD", 0.8, minimum=0, maximum=1)
SILENCE_CHECK_INTERVAL_SECONDS = env_int("SILENCE_CHECK_INTERVAL_SECONDS", 60, minimum=1)

# --- Retention (CONTRACT §4.13) ------------------------------------------------------------------------------
RETENTION_DAYS = env_int("RETENTION_DAYS", 30, minimum=1)
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", 7, minimum=1)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=1)
TRASH_RETENTION_DAYS = env_int("TRASH_RETENTION_DAYS", 7, minimum=1)
DLQ_RETENTION_DAYS = env_int("DLQ_RETENTION_DAYS", 30, minimum=1)
RETENTION_DELETE_MEDIA = env_bool("RETENTION_DELETE_MEDIA", False)
RETENTION_RUN_AT = env_str("RETENTION_RUN_AT", "03:00")
_run_hour, _, _run_minute = RETENTION_RUN_AT.strip().partition(":")  # H:MM or HH:MM, local time
if not (_run_hour.isdigit() and len(_run_hour) <= 2 and _run_minute.isdigit() and len(_run_minute) == 2) or (
    int(_run_hour) > 23 or int(_run_minute) > 59
):
    raise ImproperlyConfigured("RETENTION_RUN_AT must be a local time HH:MM (e.g. 03:00)")
RETENTION_RUN_HOUR, RETENTION_RUN_MINUTE = int(_run_hour), int(_run_minute)

# --- Events, alerts, notifications ---------------------------------------------------------------------------
FEEDBACK_SUPPRESSION_DAYS = env_int("FEEDBACK_SUPPRESSION_DAYS", 30, minimum=1, maximum=365)
FEEDBACK_SUPPRESSION_WINDOW_MINUTES = env_int("FEEDBACK_SUPPRESSION_WINDOW_MINUTES", 60, minimum=0)
EXPORT_MAX_ROWS = env_int("EXPORT_MAX_ROWS", 10000, minimum=1)
NOTIFICATIONS_ENABLED = env_bool("NOTIFICATIONS_ENABLED", True)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 5, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", True)
MQTT_URL = env_str("MQTT_URL")
MQTT_CLIENT_ID = env_str("MQTT_CLIENT_ID", f"hsi-{socket.gethostname()}")
MQTT_TOPIC_PREFIX = env_str("MQTT_TOPIC_PREFIX", "hsi")
MQTT_DISCOVERY_PREFIX = env_str("MQTT_DISCOVERY_PREFIX", "homeassistant")
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "hsi@localhost")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)

# --- WebSockets and system -----------------------------------------------------------------------------------
WEBSOCKET_PING_INTERVAL_SECONDS = env_float("WEBSOCKET_PING_INTERVAL_SECONDS", 30, minimum=0.1)
WEBSOCKET_IDLE_TIMEOUT_SECONDS = env_float("WEBSOCKET_IDLE_TIMEOUT_SECONDS", 300, minimum=0.1)
WEBSOCKET_MAX_MESSAGE_BYTES = env_int("WEBSOCKET_MAX_MESSAGE_BYTES", 65536, minimum=64)
WEBSOCKET_RESYNC_BUFFER = env_int("WEBSOCKET_RESYNC_BUFFER", 100, minimum=0)
SYSTEM_STATUS_INTERVAL_SECONDS = env_float("SYSTEM_STATUS_INTERVAL_SECONDS", 5, minimum=0.1)
GPU_MONITOR_ENABLED = env_choice("GPU_MONITOR_ENABLED", "auto", ("auto", "true", "false", "1", "0"))
GPU_POLL_INTERVAL_SECONDS = env_float("GPU_POLL_INTERVAL_SECONDS", 10, minimum=1)
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
HSI_HOST = env_str("HSI_HOST", "0.0.0.0")
HSI_PORT = env_int("HSI_PORT", 8000, minimum=1, maximum=65535)
SERVE_WORKER_THREADS = env_int("SERVE_WORKER_THREADS", 4, minimum=1)

# Periodic jobs of CONTRACT §8.3: Celery beat in distributed mode, the in-process ticker under ``serve``.
# Each entry: task name -> {"every": s} | {"minute": m} (hourly) | {"hour": h, "minute": m} (daily, local time).
# ``hsi.schedule`` turns it into beat entries.
PERIODIC_JOBS = {
    "pipeline.close_expired_batches": {"every": BATCH_CHECK_INTERVAL_SECONDS},
    "pipeline.reconcile": {"every": 60},
    "cameras.check_silence": {"every": SILENCE_CHECK_INTERVAL_SECONDS},
    "system.heartbeat": {"every": 15},
    "system.broadcast_status": {"every": SYSTEM_STATUS_INTERVAL_SECONDS},
    "system.poll_gpu": {"every": GPU_POLL_INTERVAL_SECONDS},
    "alerts.sweep_deliveries": {"every": 10},
    "events.update_baselines": {"minute": 5},
    "system.run_retention": {"hour": RETENTION_RUN_HOUR, "minute": RETENTION_RUN_MINUTE},
}

# --- Logging -------------------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()
LOG_DB_MIN_LEVEL = env_choice("LOG_DB_MIN_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "level": LOG_LEVEL},
        # LogEntry rows (CONTRACT §1.5); see system/logging.py for where and how rows are written.
        "database": {
            "class": "system.logging.DatabaseLogHandler",
            "level": LOG_DB_MIN_LEVEL,
            "quiet_loggers": ["celery.beat"],  # a row per due task; its console lines stay ("beat: Starting...")
        },
    },
    "root": {
        "handlers": ["console", "database"],
        "level": min(LOG_LEVEL, LOG_DB_MIN_LEVEL, key=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL").index),
    },
    "loggers": {
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # Third-party INFO lines are noise in LogEntry, some leak secrets: httpx logs every request's full URL
        # (webhook tokens), Celery a line per task received / succeeded (with its arguments and return value).
        # Their warnings and errors are still logged and stored.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
    },
}
