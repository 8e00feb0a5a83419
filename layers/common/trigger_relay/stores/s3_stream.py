"""GzipJsonLinesUpload: rows streamed to one S3 object as gzip JSON Lines, in bounded memory.

Compressed bytes collect in a buffer that is sent as a multipart part whenever it passes
S3's 5 MiB minimum part size, so memory stays near one part however many rows pass through.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_BYTES = 5 * 1024 * 1024


class GzipJsonLinesUpload:
    def __init__(
        self, client: S3Client, bucket: str, key: str, part_bytes: int = PART_BYTES
    ) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key
        self._part_bytes = part_bytes
        self._buffer = io.BytesIO()
        self._gzip = gzip.GzipFile(fileobj=self._buffer, mode="wb", mtime=0)
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self.rows = 0

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._gzip.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
            self.rows += 1
        if self._buffer.tell() >= self._part_bytes:
            self._send_part()

    def complete(self) -> None:
        """Finish the object. With no rows written, nothing is created."""
        self._gzip.close()
        if self._upload_id is None:
            if self.rows:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=self.key,
                    Body=self._buffer.getvalue(),
                    ContentType="application/x-ndjson",
                    ContentEncoding="gzip",
                )
            return
        self._send_part()
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self.key, UploadId=self._upload_id
            )
            self._upload_id = None

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
            )["UploadId"]
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        if not data:
            return
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
