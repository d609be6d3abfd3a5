"""The webhook notifier of one desired state: each notification to every webhook that hears it.

Made per desired state (the webhooks are part of it and change with commits), over one
long-lived `Dispatcher` per process. `notify` renders, signs and queues; it never blocks,
never raises and never sends what it cannot send correctly: a webhook whose `urlEnv` or
`secretEnv` variable is unset is recorded as a failed delivery, not sent unsigned.

`process_dispatcher` is the dispatcher of a command-line process, flushed (within a bound) at
exit; `reconciler serve` makes and closes its own.
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler import __version__
from reconciler.notifications.dispatcher import Delivery, Dispatcher
from reconciler.notifications.events import Notification, SilentNotifier
from reconciler.notifications.payloads import render
from reconciler.notifications.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    signature,
)
from reconciler.spec.loader import DesiredState
from reconciler.spec.notifications import Webhook

log = logging.getLogger(__name__)

FAILURE_LOG = "notification-failures.jsonl"
EXIT_FLUSH_SECONDS = 15.0


class WebhookNotifier:
    def __init__(
        self,
        webhooks: Sequence[Webhook],
        dispatcher: Dispatcher,
        *,
        environ: Mapping[str, str],
    ) -> None:
        self.webhooks = tuple(webhooks)
        self.dispatcher = dispatcher
        self._environ = environ

    def notify(self, notification: Notification) -> None:
        for webhook in self.webhooks:
            if not webhook.hears(notification.event, notification.use_case):
                continue
            try:
                self._send(webhook, notification)
            except Exception:  # a notification must never break what it reports on
                log.exception("cannot send %s to webhook %s", notification.event, webhook.name)

    def _send(self, webhook: Webhook, notification: Notification) -> None:
        delivery_id = uuid.uuid4().hex
        body = render(notification, webhook.format, delivery_id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"model-reconciler/{__version__}",
            EVENT_HEADER: notification.event.value,
            DELIVERY_HEADER: delivery_id,
        }
        url = webhook.url or self._environ.get(webhook.url_env or "", "")
        delivery = Delivery(
            id=delivery_id,
            webhook=webhook.name,
            event=notification.event.value,
            use_case=notification.use_case,
            url=url,
            body=body,
            headers=headers,
        )
        if not url:
            self.dispatcher.record_failure(
                delivery, 0, f"not sent: the variable {webhook.url_env} (urlEnv) is not set"
            )
            return
        if webhook.secret_env:
            secret = self._environ.get(webhook.secret_env)
            if not secret:
                self.dispatcher.record_failure(
                    delivery,
                    0,
                    f"not sent: the variable {webhook.secret_env} (secretEnv) is not set, and "
                    "a webhook that asks for signed deliveries never gets an unsigned one",
                )
                return
            headers[SIGNATURE_HEADER] = signature(secret, body)
        self.dispatcher.submit(delivery)


def notifier_for(
    desired: DesiredState, dispatcher: Dispatcher | None, *, environ: Mapping[str, str]
) -> WebhookNotifier | SilentNotifier:
    webhooks = [w for document in desired.notifications for w in document.spec.webhooks]
    if not webhooks or dispatcher is None:
        return SilentNotifier()
    return WebhookNotifier(webhooks, dispatcher, environ=environ)


_process_lock = threading.Lock()
_process_dispatchers: dict[Path, Dispatcher] = {}


def process_dispatcher(state_dir: Path) -> Dispatcher:
    """This process's dispatcher, made on first use and flushed at exit (within a bound)."""
    with _process_lock:
        found = _process_dispatchers.get(state_dir)
        if found is None:
            found = Dispatcher(failure_log=state_dir / FAILURE_LOG)
            atexit.register(found.close, EXIT_FLUSH_SECONDS)
            _process_dispatchers[state_dir] = found
        return found


def command_notifier(
    desired: DesiredState, state_dir: Path, *, environ: Mapping[str, str]
) -> WebhookNotifier | SilentNotifier:
    """The notifier of a command-line process: its webhooks over the process's dispatcher."""
    if not any(document.spec.webhooks for document in desired.notifications):
        return SilentNotifier()
    return notifier_for(desired, process_dispatcher(state_dir), environ=environ)
