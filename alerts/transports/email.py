"""E-mail transport (CONTRACT §5.9): Django's SMTP backend with the ``EMAIL_*`` settings, text + HTML, the event
thumbnail attached as JPEG. SMTP 4xx and connection trouble are retryable; 5xx and invalid addresses permanent."""

from __future__ import annotations

import smtplib
import time

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from alerts.payloads import email_html, email_subject, email_text
from alerts.transports.base import SendResult, Transport

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def smtp_connection(timeout: float | None = None):
    """An SMTP connection from the ``EMAIL_*`` settings (always SMTP, whatever ``EMAIL_BACKEND`` says)."""
    return get_connection(
        SMTP_BACKEND,
        fail_silently=False,
        host=settings.EMAIL_HOST,
        port=settings.EMAIL_PORT,
        username=settings.EMAIL_HOST_USER or None,
        password=settings.EMAIL_HOST_PASSWORD or None,
        use_tls=bool(settings.EMAIL_USE_TLS) and not settings.EMAIL_USE_SSL,
        use_ssl=bool(settings.EMAIL_USE_SSL),
        timeout=timeout or settings.EMAIL_TIMEOUT,
    )


def build_message(channel, payload: dict, *, thumbnail: bytes | None = None, connection=None) -> EmailMultiAlternatives:
    config = channel.config or {}
    recipients = config.get("to") or []
    if isinstance(recipients, str):
        recipients = [recipients]
    prefix = config.get("subject_prefix")
    message = EmailMultiAlternatives(
        subject=email_subject(payload, subject_prefix="[HSI]" if prefix is None else prefix),
        body=email_text(payload),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(recipients),
        connection=connection,
    )
    message.attach_alternative(email_html(payload), "text/html")
    if thumbnail and config.get("attach_thumbnail", True):
        event = payload.get("event") or {}
        message.attach(f"event_{event.get('id', 'thumbnail')}.jpg", thumbnail, "image/jpeg")
    return message


def _smtp_code(error: BaseException) -> int | None:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return min(codes) if codes and all(400 <= c < 500 for c in codes) else max(codes or [550])
    return getattr(error, "smtp_code", None)


class EmailTransport(Transport):
    kind = "email"

    def send(self, channel, payload, *, event_type, delivery_id, thumbnail=None) -> SendResult:
        if not settings.EMAIL_HOST:
            return SendResult(success=False, error="Email is not configured", error_type="not_configured")
        started = time.monotonic()
        try:
            message = build_message(channel, payload, thumbnail=thumbnail, connection=smtp_connection())
            if not message.to:
                return SendResult(success=False, error="Email channel has no recipients", error_type="invalid_address")
            sent = message.send(fail_silently=False)
        except smtplib.SMTPResponseException as error:
            return self._smtp_failure(started, error, error.smtp_code, error.smtp_error)
        except smtplib.SMTPRecipientsRefused as error:
            details = "; ".join(f"{rcpt}: {code} {text!r}" for rcpt, (code, text) in error.recipients.items())
            return self._smtp_failure(started, error, _smtp_code(error), details.encode())
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError) as error:
            return self._failure(started, f"SMTP connection error: {error}", True, "connection_error")
        except TimeoutError as error:
            return self._failure(started, f"SMTP timeout: {error}", True, "timeout")
        except (ValueError, UnicodeError) as error:  # bad header / address
            return self._failure(started, f"Invalid address or header: {error}", False, "invalid_address")
        except OSError as error:
            return self._failure(started, f"SMTP error: {error}", True, "connection_error")
        latency = (time.monotonic() - started) * 1000
        if not sent:
            return SendResult(False, error="SMTP server accepted no message", retryable=True, latency_ms=latency)
        return SendResult(success=True, message=f"sent to {', '.join(message.to)}", latency_ms=latency)

    def _smtp_failure(self, started: float, error: BaseException, code: int | None, text) -> SendResult:
        reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text or error)
        retryable = code is not None and 400 <= code < 500
        error_type = "smtp_temporary" if retryable else "smtp_permanent"
        return self._failure(started, f"SMTP {code}: {reason}", retryable, error_type)

    @staticmethod
    def _failure(started: float, error: str, retryable: bool, error_type: str) -> SendResult:
        latency = (time.monotonic() - started) * 1000
        return SendResult(success=False, error=error, retryable=retryable, latency_ms=latency, error_type=error_type)


TRANSPORT = EmailTransport()
