"""mixhouse_client: a light, typed client of Mixpanel's HTTP APIs, for Mixpanel itself or a mixhouse server.

    from mixhouse_client import Client, ServiceAccount

    with Client(base_url="http://127.0.0.1:8080", credentials=ServiceAccount("sa", "secret", 4242)) as mp:
        mp.import_events([{"event": "Signed Up", "properties": {"distinct_id": "u1", "time": 1704067200}}])
        for event in mp.export("2024-01-01", "2024-01-31"):
            ...

    async with AsyncClient(base_url=..., credentials=...) as mp:    # the same calls, awaited
        await mp.segmentation("Signed Up", "2024-01-01", "2024-01-31")

Everything public is named here; the modules starting with `_` are private.
"""

from mixhouse_client._async import (
    AsyncAnnotations,
    AsyncClient,
    AsyncExportChunk,
    AsyncFeatureFlags,
    AsyncGDPR,
    AsyncLegacyAnnotations,
    AsyncLookupTables,
    AsyncSavedObjects,
    AsyncSchemas,
    AsyncServiceAccounts,
)
from mixhouse_client._batching import MAX_BYTES, MAX_RECORDS, content_insert_id
from mixhouse_client._client import (
    GDPR,
    Annotations,
    Client,
    ExportChunk,
    FeatureFlags,
    LegacyAnnotations,
    LookupTables,
    SavedObjects,
    Schemas,
    ServiceAccounts,
    __version__,
)
from mixhouse_client._config import Family, ProjectSecret, Region, ServiceAccount
from mixhouse_client._exceptions import (
    APIError,
    AuthenticationFailed,
    BadRequest,
    ConfigurationError,
    MixpanelError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)
from mixhouse_client._flags import LocalFlags
from mixhouse_client._ops import FailedRecord, IngestResult
from mixhouse_client._retry import RetryPolicy
from mixhouse_client._transport import AppTransport, AsyncAppTransport
from mixhouse_client._types import (
    Annotation,
    AnnotationTag,
    AnnotationTagRef,
    AnnotationUser,
    FeatureFlag,
    LegacyAnnotation,
)

__all__ = [
    "GDPR",
    "MAX_BYTES",
    "MAX_RECORDS",
    "APIError",
    "Annotation",
    "AnnotationTag",
    "AnnotationTagRef",
    "AnnotationUser",
    "Annotations",
    "AppTransport",
    "AsyncAnnotations",
    "AsyncAppTransport",
    "AsyncClient",
    "AsyncExportChunk",
    "AsyncFeatureFlags",
    "AsyncGDPR",
    "AsyncLegacyAnnotations",
    "AsyncLookupTables",
    "AsyncSavedObjects",
    "AsyncSchemas",
    "AsyncServiceAccounts",
    "AuthenticationFailed",
    "BadRequest",
    "Client",
    "ConfigurationError",
    "ExportChunk",
    "FailedRecord",
    "Family",
    "FeatureFlag",
    "FeatureFlags",
    "IngestResult",
    "LegacyAnnotation",
    "LegacyAnnotations",
    "LocalFlags",
    "LookupTables",
    "MixpanelError",
    "NotFound",
    "PermissionDenied",
    "ProjectSecret",
    "RateLimited",
    "Region",
    "RetryPolicy",
    "SavedObjects",
    "Schemas",
    "ServerError",
    "ServiceAccount",
    "ServiceAccounts",
    "TransportError",
    "__version__",
    "content_insert_id",
]
