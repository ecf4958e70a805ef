"""A one-module Django project served as WSGI: `pier tests.e2e.apps.django_wsgi:application`.

Forms, uploads, a streaming response, a FileResponse (which Django hands to
wsgi.file_wrapper), an error view and a 404, with DEBUG off as in production.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

# The file the download route serves, written by the test.
DOWNLOAD_ENV = "WSGI_TEST_DOWNLOAD"

settings.configure(
    DEBUG=False,
    SECRET_KEY="pier-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    USE_TZ=True,
    # Uploads over this size go to a temporary file, as in production.
    FILE_UPLOAD_MAX_MEMORY_SIZE=256 * 1024,
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,
    LOGGING_CONFIG=None,
)
django.setup()


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        f"Hello from Django at {request.path} (script {request.META['SCRIPT_NAME']!r})"
    )


@csrf_exempt
def form(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"name": request.POST["name"], "tags": request.POST.getlist("tag")})


@csrf_exempt
def upload(request: HttpRequest) -> JsonResponse:
    file = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in file.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"filename": file.name, "size": size, "sha256": digest.hexdigest()})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def generate() -> Iterator[bytes]:
        for i in range(100):
            yield f"line {i}\n".encode()

    return StreamingHttpResponse(generate(), content_type="text/plain")


def download(request: HttpRequest) -> FileResponse:
    file = open(os.environ[DOWNLOAD_ENV], "rb")  # noqa: SIM115 - FileResponse closes it
    return FileResponse(file, as_attachment=True, filename="download.bin")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django view failed on purpose")


urlpatterns = [
    path("hello", hello),
    path("form", form),
    path("upload", upload),
    path("stream", stream),
    path("download", download),
    path("boom", boom),
]

application = get_wsgi_application()
