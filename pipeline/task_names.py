"""The names of the pipeline's per-file tasks, for the code that dispatches them without importing the tasks."""

PROCESS_FILE_TASK = "pipeline.process_file"
PROCESS_FILES_TASK = "pipeline.process_files"  # a chunk of files: see ``hsi.dispatch.coalesced``
