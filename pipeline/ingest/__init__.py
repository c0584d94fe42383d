"""Ingest: camera files from the watcher or HTTP uploads into ``pending`` IngestedFile rows (CONTRACT §4.1, §4.2,
§6.5). ``file_ingest`` is the one entry point for files on disk; ``upload_store`` serves the upload endpoint."""

from pipeline.ingest.rules import (
    camera_folder_of,
    is_accepted_path,
    is_ignored_name,
    magic_matches_extension,
    media_type_for,
    sanitise_upload_name,
    sniff_mime_type,
)
from pipeline.ingest.service import (
    ACCEPTED,
    DUPLICATE,
    IGNORED,
    INVALID,
    SKIPPED_DISABLED,
    BurstIngestError,
    FileInspection,
    IngestOutcome,
    dedup_key,
    dedup_lookup,
    file_ingest,
    file_record_unstable,
    files_ingest,
)
from pipeline.ingest.validation import sha256_of_file, validate_media

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "IGNORED",
    "INVALID",
    "SKIPPED_DISABLED",
    "BurstIngestError",
    "FileInspection",
    "IngestOutcome",
    "camera_folder_of",
    "dedup_key",
    "dedup_lookup",
    "file_ingest",
    "file_record_unstable",
    "files_ingest",
    "is_accepted_path",
    "is_ignored_name",
    "magic_matches_extension",
    "media_type_for",
    "sanitise_upload_name",
    "sha256_of_file",
    "sniff_mime_type",
    "validate_media",
]
