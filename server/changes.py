"""The caller's accepted changes as a Sponsored Products bulksheet to upload in the ad console
(`GET /v1/changes/bulksheet`): every change applied through a confirmation (or a job, or a person) since a
time, read from the store's audit log (tools/market/bulksheet.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from server.auth import Principal, require_advertiser
from server.deps import Services, caller, services
from server.errors import ApiError
from tools.errors import AdguideError, UnknownIdError
from tools.market.bulksheet import bulksheet_csv, export_bulksheet
from tools.market.store import default_store

router = APIRouter(prefix="/v1", tags=["changes"])


@router.get(
    "/changes/bulksheet",
    summary="Your applied changes as a Sponsored Products bulksheet (CSV)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def bulksheet(
    since: dt.datetime | None = Query(
        None, description="only changes at or after this time (ISO 8601; without a zone: UTC)"
    ),
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> Response:
    advertiser_id = require_advertiser(principal)
    path = svc.settings.world_path or default_store()
    try:
        export = await asyncio.to_thread(export_bulksheet, path, advertiser_id, since)
    except UnknownIdError as exc:
        raise ApiError(404, "advertiser_not_found", f"no account data for {advertiser_id}") from exc
    except AdguideError as exc:  # the message names what is wrong; the server's paths stay out of it
        raise ApiError(422, "cannot_export", str(exc).replace(str(path), "the account store")) from exc
    return Response(
        bulksheet_csv(export.rows),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="adguide-changes-{advertiser_id}.csv"',
            "X-Bulksheet-Rows": str(len(export.rows)),
            "X-Bulksheet-Rows-By-Name": str(export.by_name),
        },
    )
