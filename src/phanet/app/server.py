"""The app's HTTP side (Starlette, served by uvicorn): the page, its assets and the JSON API.

========================  ==================================================================
``GET /``                 the page
``GET /assets/NAME``      the page's script and style sheet, from the package (nothing else)
``GET /api/info``         the model, the detector, the limits and the table's columns
``POST /api/predict``     a picture as the request body; ``?name=`` the name its rows show
``POST /api/video``       a video as the request body; ``?name=`` likewise
========================  ==================================================================

Both POSTs answer ``{"file", "width", "height", "rows", "csv", ...}``: ``rows`` the table of
``phanet predict`` as objects (NaN as null), ``csv`` the same table as ``phanet predict --out x.csv``
writes it. A refused request gets its 4xx status and ``{"error": "one line"}``; an error
of the app itself gets 500 and one line, and the log gets one line too, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from phanet.app.limits import Refused
from phanet.app.service import PredictionService, display_name, receive
from phanet.errors import PhanetError

LOG = logging.getLogger("phanet.app")

#: The only files served: name in the URL -> (file in phanet/app/static, media type).
ASSETS = {"app.js": ("app.js", "text/javascript; charset=utf-8"), "app.css": ("app.css", "text/css; charset=utf-8")}

#: Video file endings by the media type a browser sends (OpenCV reads the container, whatever its name).
VIDEO_TYPES = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "video/x-msvideo": ".avi",
    "video/x-matroska": ".mkv",
}

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = _HEADERS | {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _static(name: str) -> bytes:
    return resources.files("phanet.app").joinpath("static").joinpath(name).read_bytes()


def error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status, headers=_HEADERS | headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def one_line_errors(endpoint: Endpoint) -> Endpoint:
    """An endpoint whose refusals become their status and reason, and whose own failures one line of 500."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Refused as refused:
            LOG.info("%s %s: %d %s", request.method, request.url.path, refused.status, refused.reason)
            retry = {"Retry-After": "1"} if refused.status == 429 else {}
            return error(refused.status, refused.reason, **retry)
        except PhanetError as exc:
            LOG.info("%s %s: 422 %s", request.method, request.url.path, exc)
            return error(422, str(exc).splitlines()[0])
        except ClientDisconnect:
            LOG.info("%s %s: the client went away during its upload", request.method, request.url.path)
            return error(400, "the client went away during its upload")
        except Exception as exc:  # noqa: BLE001 - the app answers every request, with one line
            LOG.error("%s %s: 500 %s: %s", request.method, request.url.path, type(exc).__name__, str(exc).splitlines()[:1])
            return error(500, f"the app failed on this request ({type(exc).__name__}); the server goes on")

    return guarded


def create_app(service: PredictionService) -> Starlette:
    """The Starlette application over ``service``."""
    page = _static("index.html")
    assets = {name: (_static(file), media) for name, (file, media) in ASSETS.items()}

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            raise Refused(404, "not found")
        return Response(found[0], media_type=found[1], headers=_HEADERS)

    async def info(request: Request) -> Response:
        return JSONResponse(service.info(), headers=_HEADERS)

    async def predict(request: Request) -> Response:
        return await _upload(request, "picture")

    async def video(request: Request) -> Response:
        return await _upload(request, "video")

    async def _upload(request: Request, what: str) -> Response:
        limits = service.limits
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise Refused(415, f"send the {what} itself as the request body (curl --data-binary @FILE), not a form")
        async with service.admitted_request() as path:
            limit = limits.max_bytes if what == "picture" else limits.max_video_bytes
            await receive(request.stream(), path, request.headers.get("content-length"), limit, what)
            name = display_name(request.query_params.get("name"), what)
            result: dict[str, Any]
            if what == "picture":
                result = await service.run(service.predict_image, path, name)
            else:
                kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
                suffix = VIDEO_TYPES.get(kind, ".mp4")
                moved = path.with_suffix(suffix)
                path.rename(moved)
                try:
                    result = await service.run(service.predict_video, moved, name)
                finally:
                    moved.unlink(missing_ok=True)
        return JSONResponse(result, headers=_HEADERS)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "not found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, f"{request.method} is not allowed here")

    routes = [
        Route("/", one_line_errors(index), methods=["GET"]),
        Route("/assets/{name}", one_line_errors(asset), methods=["GET"]),
        Route("/api/info", one_line_errors(info), methods=["GET"]),
        Route("/api/predict", one_line_errors(predict), methods=["POST"]),
        Route("/api/video", one_line_errors(video), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.service = service
    return app
