"""python -m tests.s3server build: build (or find cached) the SeaweedFS server."""

from __future__ import annotations

import sys

from tests.s3server import S3ServerError, build


def main() -> int:
    if sys.argv[1:] != ["build"]:
        print("usage: python -m tests.s3server build", file=sys.stderr)
        return 2
    try:
        print(build())
    except S3ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
