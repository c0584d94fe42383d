from django.apps import AppConfig


class MediaServingConfig(AppConfig):
    name = "media_serving"
    verbose_name = "Media serving"
