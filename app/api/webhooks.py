"""Webhook subscriptions: be told (signed, at least once) when your runs and tasks end or ask
for input, instead of polling. Every route needs the `webhooks` scope; a subscription hears
only of its maker's runs and tasks, and is visible to its maker only; a tenant's
subscription (`scope: tenant`, made by a `tenant:admin`) hears of every principal of the
tenant and is managed by its tenant admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from starlette.requests import HTTPConnection

from app.api.deps import SettingsDep, WebhooksDep, services_of
from app.api.responses import ProblemDoc, problems
from app.api.schemas.webhooks import (
    DeliveryInfo,
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookInfo,
    WebhookList,
)
from app.core.errors import Forbidden
from app.security.principals import Principal
from app.security.scopes import Scope
from app.webhooks.models import DeliveryStatus
from app.webhooks.owners import tenant_owner
from app.webhooks.service import Owners, WebhookService

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WEBHOOK_NOT_FOUND = ProblemDoc(
    "No subscription with this id, or it is someone else's.",
    (("webhook_not_found", "No webhook subscription with this id."),),
)
DELIVERY_NOT_FOUND = ProblemDoc(
    "No such subscription, or no delivery with this id in its log.",
    (
        ("webhook_not_found", "No webhook subscription with this id."),
        ("webhook_delivery_not_found", "No delivery with this id."),
    ),
)
CREATE_CONFLICT = ProblemDoc(
    "The caller holds WEBHOOK_MAX_SUBSCRIPTIONS_PER_PRINCIPAL subscriptions already.",
    (("too_many_webhooks", "At most 20 webhook subscriptions per principal; delete one first."),),
)
CREATE_UNPROCESSABLE = ProblemDoc(
    "The body is invalid, or the URL may not be called: not http(s), credentials in it, a "
    "host that does not resolve, or one that resolves to a loopback, private or link-local "
    "address outside WEBHOOK_ALLOWED_NETWORKS.",
    (
        ("validation_error", "body.events: Field required"),
        (
            "webhook_url_refused",
            "The webhook URL cannot be used: the host resolves to a non-public address.",
        ),
    ),
)
RETRY_CONFLICT = ProblemDoc(
    "The delivery is still being tried.",
    (
        (
            "webhook_delivery_pending",
            "This delivery is still being tried; it can be retried once it has ended.",
        ),
    ),
)


async def _service(connection: HTTPConnection) -> WebhookService:
    service = services_of(connection).webhooks
    if service is None:  # the routes are mounted only with WEBHOOKS_ENABLED
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return service


ServiceDep = Annotated[WebhookService, Depends(_service)]


def _owners(principal: Principal) -> Owners:
    """Whose subscriptions the caller manages: its own, and its tenant's as a tenant admin."""
    if principal.has_scopes({Scope.TENANT_ADMIN}):
        return principal.id, tenant_owner(principal.tenant)
    return (principal.id,)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problems(401, 403, docs={409: CREATE_CONFLICT, 422: CREATE_UNPROCESSABLE}),
    summary="Subscribe a URL to run and task events",
)
async def create_webhook(
    body: WebhookCreate,
    principal: WebhooksDep,
    webhooks: ServiceDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookCreated:
    """From now on, each event of the caller's runs and tasks named in `events` is POSTed to
    `url` as JSON (`{"type", "timestamp", "data"}`, `data` being the run as GET
    /v1/runs/{id} shows it), signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    `webhook-signature` under the `secret` returned here, once). Deliveries are made by the
    workers, at least once, retried with exponential backoff and jitter for
    WEBHOOK_RETRY_HORIZON_SECONDS (72 h); a receiver deduplicates by `webhook-id`, which
    every attempt of one event repeats. A 2xx accepts; redirects are not followed."""
    owner = principal.id
    if body.scope == "tenant":
        if not principal.has_scopes({Scope.TENANT_ADMIN}):
            raise Forbidden(
                "A tenant's subscription needs the tenant:admin scope.", code="insufficient_scope"
            )
        owner = tenant_owner(principal.tenant)
    subscription = await webhooks.create(
        owner, url=body.url, events=body.events, description=body.description
    )
    response.headers["Location"] = f"{settings.API_PREFIX}/webhooks/{subscription.id}"
    info = WebhookInfo.of(subscription)
    return WebhookCreated(**info.model_dump(), secret=subscription.secret)


@router.get(
    "", response_model=WebhookList, responses=problems(401, 403), summary="List own webhooks"
)
async def list_webhooks(principal: WebhooksDep, webhooks: ServiceDep) -> WebhookList:
    """The caller's subscriptions, oldest first (their secrets are never shown again), and
    for a tenant admin its tenant's."""
    return WebhookList(items=[WebhookInfo.of(s) for s in await webhooks.list(_owners(principal))])


@router.get(
    "/{webhook_id}",
    response_model=WebhookInfo,
    responses=problems(401, 403, docs={404: WEBHOOK_NOT_FOUND}),
    summary="Read a webhook subscription",
)
async def get_webhook(webhook_id: str, principal: WebhooksDep, webhooks: ServiceDep) -> WebhookInfo:
    """Its URL, events and description (not its secret). Another principal's subscription,
    or a malformed id, is 404 `webhook_not_found`."""
    return WebhookInfo.of(await webhooks.get(_owners(principal), webhook_id))


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(401, 403, docs={404: WEBHOOK_NOT_FOUND}),
    summary="Delete a webhook subscription",
)
async def delete_webhook(webhook_id: str, principal: WebhooksDep, webhooks: ServiceDep) -> Response:
    """Stops its deliveries (those still queued are dropped) and forgets its log."""
    await webhooks.delete(_owners(principal), webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses=problems(401, 403, 422, docs={404: WEBHOOK_NOT_FOUND}),
    summary="A subscription's delivery log, newest first",
)
async def list_deliveries(
    webhook_id: str,
    principal: WebhooksDep,
    webhooks: ServiceDep,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000)] = 0,
) -> DeliveryList:
    """Its newest 1,000 deliveries (each kept WEBHOOK_DELIVERY_RETENTION_SECONDS after its
    last change), with their attempts. `status=failed` lists the dead letters."""
    items, total = await webhooks.deliveries_of(
        _owners(principal), webhook_id, status=status_filter, limit=limit, offset=offset
    )
    return DeliveryList(
        items=[DeliveryInfo.of(d) for d in items], total=total, limit=limit, offset=offset
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryInfo,
    responses=problems(401, 403, docs={404: DELIVERY_NOT_FOUND, 409: RETRY_CONFLICT}),
    summary="Deliver an ended delivery again",
)
async def retry_delivery(
    webhook_id: str, delivery_id: str, principal: WebhooksDep, webhooks: ServiceDep
) -> DeliveryInfo:
    """Queues it now, with the same `webhook-id` and body (a dead letter after the receiver
    was fixed, or a delivered one the receiver lost). Past the retry horizon it gets this
    one attempt."""
    return DeliveryInfo.of(await webhooks.retry(_owners(principal), webhook_id, delivery_id))
