"""A data set: its config, the expressions in it, where its files live, reading, checking and
preparing it for training."""

from lifecycle.dataset.config import (
    ConfigError,
    DatasetConfig,
    config_as_json,
    load_config,
    parse_config,
)
from lifecycle.dataset.draft import DraftError, draft_config, write_draft
from lifecycle.dataset.ingest import IngestError, ingest_table, read_table
from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.dataset.storage import (
    StorageError,
    fetch_to_file,
    upload_file,
    written_whole,
)
from lifecycle.dataset.validate import (
    DataValidationError,
    ValidationReport,
    validate_frame,
)

__all__ = [
    "ConfigError",
    "DataValidationError",
    "DatasetConfig",
    "DraftError",
    "IngestError",
    "StorageError",
    "ValidationReport",
    "config_as_json",
    "draft_config",
    "fetch_to_file",
    "ingest_table",
    "load_config",
    "parse_config",
    "process_frame",
    "read_table",
    "split_frame",
    "upload_file",
    "validate_frame",
    "write_draft",
    "written_whole",
]
