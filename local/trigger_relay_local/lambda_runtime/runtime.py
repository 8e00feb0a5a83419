"""Running a function's real handler as Lambda would: its code, the layer, a context, a deadline."""

from __future__ import annotations

import importlib
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trigger_relay_local.stack.template import ROOT

LAYER_DIR = ROOT / "layers" / "common"


class LocalContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_seconds: int, memory_mb: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(code_dir: Path, handler: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import ``app.lambda_handler`` from code_dir with the shared layer on the path."""
    module_name, _, function_name = handler.rpartition(".")
    for path in (str(LAYER_DIR), str(code_dir)):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    sys.modules.pop(module_name, None)  # each function has its own app.py
    module = importlib.import_module(module_name)
    return getattr(module, function_name)  # type: ignore[no-any-return]
