"""How big an uploaded file gets once decoded, found out before decoding it; compressed files unpacked
within a hard byte budget.

A 478-byte zstd Parquet file can decode to 67 MB, and a few hundred kilobytes to more memory than the
machine has. Every size written inside a file is the attacker's to choose, so nothing here trusts one
alone:

- gzip (.gz) is decompressed in chunks and stops the moment the output passes the budget.
- zip (.zip): one dataset file inside; the sizes it declares are checked first, then it is read in
  chunks against the same budget.
- Parquet (read_parquet): the footer (row counts, uncompressed sizes) is checked, then every page header
  of every column chunk is read (a few bytes each, no decompression). The Parquet reader refuses a page
  that does not decompress to exactly the size its header declares, so the sum of those sizes bounds
  what reading can allocate. Text columns are then read still dictionary-encoded (one long value
  repeated for every row stays one value), the size of expanding them is computed from the value
  lengths, and only a table within the budget is expanded.

Every refusal is a TooBig (a StudioError) whose message says what the file would grow to and which limit
(STUDIO_MAX_DECODED_MB, STUDIO_MAX_ROWS) it passes.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass

from studio import limits
from studio.errors import StudioError

CHUNK = 1 << 20
PER_VALUE_BYTES = 16  # Arrow offsets/validity and bookkeeping per decoded value, on top of its bytes
MAX_ZIP_MEMBERS = 1000
DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".pq")


class TooBig(StudioError):
    """The file would pass a size limit once decoded; nothing was decoded."""


def _mb(size: float) -> str:
    return f"{size / limits.MIB:,.1f} MB" if size < 10 * limits.MIB else f"{size / limits.MIB:,.0f} MB"


def decoded_budget() -> int | None:
    """STUDIO_MAX_DECODED_MB in bytes (None: no limit)."""
    return limits.max_bytes("decoded_mb")


def refuse_size(what: str, size: float, budget: int, at_least: bool = False) -> TooBig:
    grows = "more than " if at_least else ""
    return TooBig(
        f"{what} would grow to {grows}{_mb(size)} once decoded, over this studio's limit of {_mb(budget)}.",
        f"Upload a smaller file (or fewer rows). {limits.raise_hint('decoded_mb')}",
    )


def check_rows(rows: int, what: str = "The file", at_least: bool = False) -> None:
    """TooBig over STUDIO_MAX_ROWS; `at_least`: `rows` were counted so far and the file holds more."""
    limit = limits.whole("rows")
    if limit is not None and rows > limit:
        held = f"more than {limit:,} rows" if at_least else f"{rows:,} rows"
        raise TooBig(
            f"{what} holds {held}, over this studio's limit of {limit:,} rows.",
            f"Sample it down or split it. {limits.raise_hint('rows')}",
        )


# ---------------------------------------------------------------- gzip / zip


def gunzip(data: bytes, budget: int | None, what: str = "The .gz file") -> bytes:
    """Decompress gzip data (every member) chunk by chunk; TooBig as soon as the output passes `budget`."""
    out = bytearray()
    pending = data
    while pending:
        inflater = zlib.decompressobj(wbits=31)  # gzip header and trailer
        source = pending
        while source:
            room = CHUNK if budget is None else min(CHUNK, budget + 1 - len(out))
            try:
                piece = inflater.decompress(source, max(1, room))
            except zlib.error as error:
                raise StudioError(
                    f"{what} is not valid gzip data ({error}).", "Re-compress it, or upload it uncompressed."
                ) from error
            out += piece
            if budget is not None and len(out) > budget:
                raise refuse_size(what, len(out), budget, at_least=True)
            source = inflater.unconsumed_tail
            if inflater.eof:
                break
            if not piece and not source:
                break
        if not inflater.eof:
            raise StudioError(
                f"{what} is cut off (the gzip stream ends early).", "Re-download or re-compress the file."
            )
        pending = inflater.unused_data.lstrip(b"\0")  # another member may follow (concatenated gzip files)
    return bytes(out)


def unzip_dataset(data: bytes, budget: int | None, what: str = "The .zip file") -> tuple[str, bytes]:
    """The one dataset file inside a zip archive, as (name, bytes), read within `budget`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as error:
        raise StudioError(
            f"{what} is not a readable zip archive ({error}).", "Re-create the archive, or upload the file itself."
        ) from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise TooBig(
                f"{what} holds {len(members):,} entries; a dataset archive holds one file.",
                "Upload the dataset file itself, or a zip with just that file.",
            )
        candidates = [
            info
            for info in members
            if not info.is_dir()
            and info.filename.lower().endswith(DATASET_SUFFIXES)
            and not info.filename.split("/")[-1].startswith(".")
            and "__MACOSX" not in info.filename
        ]
        if len(candidates) != 1:
            found = ", ".join(info.filename for info in candidates[:5]) or "none"
            raise StudioError(
                f"{what} should hold exactly one dataset file (.jsonl, .json, .csv or .parquet); found {found}.",
                "Zip one file, or upload the file itself.",
            )
        info = candidates[0]
        if budget is not None and info.file_size > budget:
            raise refuse_size(f"{info.filename} in {what.lower().removeprefix('the ')}", info.file_size, budget)
        out = bytearray()
        try:
            with archive.open(info) as member:
                while True:
                    room = CHUNK if budget is None else min(CHUNK, budget + 1 - len(out))
                    piece = member.read(max(1, room))
                    if not piece:
                        break
                    out += piece
                    if budget is not None and len(out) > budget:
                        raise refuse_size(info.filename, len(out), budget, at_least=True)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
            raise StudioError(
                f"{info.filename} in the archive could not be unpacked ({error}).",
                "Re-create the archive (plain deflate, no password), or upload the file itself.",
            ) from error
        return info.filename.split("/")[-1], bytes(out)


# ---------------------------------------------------------------- Parquet


class _Thrift:
    """Just enough of Thrift's compact protocol to read Parquet page headers (and skip what is not needed)."""

    def __init__(self, data: bytes, pos: int, end: int):
        self.data, self.pos, self.end = data, pos, end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("page header runs past the column chunk")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        result = shift = 0
        while True:
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        number = self.varint()
        return (number >> 1) ^ -(number & 1)

    def skip(self, kind: int, depth: int) -> None:
        if depth > 20:
            raise ValueError("page header nested too deeply")
        if kind in (1, 2):  # booleans live in the field header
            return
        if kind == 3:
            self.pos += 1
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.pos += 8
        elif kind == 8:
            length = self.varint()  # read first: `self.pos += self.varint()` would add to the old position
            self.pos += length
        elif kind in (9, 10):
            header = self.byte()
            size = header >> 4
            if size == 15:
                size = self.varint()
            for _ in range(size):
                self._element(header & 0x0F, depth + 1)
        elif kind == 11:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self._element(types >> 4, depth + 1)
                    self._element(types & 0x0F, depth + 1)
        elif kind == 12:
            self.struct(depth + 1)
        else:
            raise ValueError(f"unknown thrift type {kind}")
        if self.pos > self.end:
            raise ValueError("page header runs past the column chunk")

    def _element(self, kind: int, depth: int) -> None:
        if kind in (1, 2):
            self.pos += 1
        else:
            self.skip(kind, depth)

    def struct(self, depth: int = 0, nested: tuple[int, ...] = ()) -> dict:
        """Integer fields by id; structs whose id is in `nested` are read too, the rest skipped."""
        fields: dict = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            kind, delta = header & 0x0F, header >> 4
            field_id = last + delta if delta else self.zigzag()
            last = field_id
            if kind == 12 and field_id in nested:
                fields[field_id] = self.struct(depth + 1)
            elif kind in (4, 5, 6):
                fields[field_id] = self.zigzag()
            else:
                self.skip(kind, depth)


_DATA_PAGE, _DATA_PAGE_V2 = 0, 3


@dataclass
class ParquetSize:
    rows: int
    page_bytes: int  # the sum of every page's declared uncompressed size
    values: int  # values in data pages (nulls and nested elements included)

    @property
    def decoded_bytes(self) -> int:
        """What reading the pages allocates (string columns kept dictionary-encoded)."""
        return self.page_bytes + self.values * PER_VALUE_BYTES


def _metadata(data: bytes):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(io.BytesIO(data)).metadata
    except Exception as error:  # noqa: BLE001 - any unreadable footer is the user's file, not our bug
        raise StudioError(
            f"The Parquet file could not be read: {str(error)[:160]}.",
            "Check that it is a complete Parquet file (re-export it).",
        ) from error


def parquet_size(data: bytes) -> ParquetSize:
    """What reading this Parquet file would allocate, from its footer and page headers only (nothing decompressed).

    Raises StudioError when the file is not readable Parquet or its pages do not fit their column chunks."""
    metadata = _metadata(data)
    size = ParquetSize(rows=int(metadata.num_rows), page_bytes=0, values=0)
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            chunk = group.column(column_index)
            start = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                start = min(start, chunk.dictionary_page_offset)
            end = start + chunk.total_compressed_size
            if start < 0 or end > len(data) or start >= end:
                raise StudioError(
                    "The Parquet file's column chunks point outside the file.", "Re-export it; the file is damaged."
                )
            _scan_chunk(data, start, end, size)
    return size


def _scan_chunk(data: bytes, pos: int, end: int, size: ParquetSize) -> None:
    while pos < end:
        reader = _Thrift(data, pos, end)
        try:
            header = reader.struct(nested=(5, 8))
        except (ValueError, IndexError) as error:
            raise StudioError(f"The Parquet file has a damaged page header ({error}).", "Re-export it.") from error
        kind, uncompressed, compressed = header.get(1), header.get(2, -1), header.get(3, -1)
        if uncompressed < 0 or compressed < 0 or reader.pos + compressed > end:
            raise StudioError(
                "The Parquet file has a page whose sizes do not fit its column chunk.",
                "Re-export it; the file is damaged.",
            )
        size.page_bytes += uncompressed
        if kind in (_DATA_PAGE, _DATA_PAGE_V2):
            size.values += max(0, (header.get(5 if kind == _DATA_PAGE else 8) or {}).get(1, 0))
        pos = reader.pos + compressed


def _plain_bytes(array) -> int:
    """Bytes of `array` once its dictionary-encoded parts are expanded, worked out without expanding them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_dictionary(kind):
        lengths = (
            pc.binary_length(array.dictionary)
            if (
                pa.types.is_string(kind.value_type)
                or pa.types.is_binary(kind.value_type)
                or pa.types.is_large_string(kind.value_type)
                or pa.types.is_large_binary(kind.value_type)
            )
            else None
        )
        if lengths is None:
            return len(array) * max(1, array.dictionary.nbytes // max(1, len(array.dictionary)))
        taken = pc.sum(pc.take(lengths, array.indices)).as_py() or 0
        return int(taken) + 4 * len(array)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        return 8 * len(array) + _plain_bytes(array.values)
    if pa.types.is_fixed_size_list(kind):
        return _plain_bytes(array.values)
    if pa.types.is_struct(kind):
        return sum(_plain_bytes(array.field(i)) for i in range(kind.num_fields))
    return array.nbytes


def _plain_type(kind):
    """`kind` with every dictionary type replaced by its value type."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return kind.value_type
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_plain_type(kind.value_type)))
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_plain_type(kind.value_type)))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(kind.value_field.with_type(_plain_type(kind.value_type)), kind.list_size)
    if pa.types.is_map(kind):
        return pa.map_(
            kind.key_field.with_type(_plain_type(kind.key_type)), kind.item_field.with_type(_plain_type(kind.item_type))
        )
    if pa.types.is_struct(kind):
        return pa.struct([kind.field(i).with_type(_plain_type(kind.field(i).type)) for i in range(kind.num_fields)])
    return kind


def read_parquet(data: bytes, what: str = "The Parquet file"):
    """The file as a pyarrow Table, refused (TooBig) before it can pass STUDIO_MAX_ROWS or STUDIO_MAX_DECODED_MB.

    1. footer: row count and declared sizes; 2. page headers: what decompression allocates (nothing decompressed
    yet); 3. read with text columns still dictionary-encoded (memory bounded by step 2); 4. what expanding the
    dictionaries would take, computed from lengths; 5. only then the plain table."""
    import pyarrow.parquet as pq

    budget = decoded_budget()
    metadata = _metadata(data)
    check_rows(int(metadata.num_rows), what)
    declared = sum(max(0, metadata.row_group(i).total_byte_size) for i in range(metadata.num_row_groups))
    if budget is not None and declared > budget:
        raise refuse_size(what, declared, budget)
    size = parquet_size(data)
    if budget is not None and size.decoded_bytes > budget:
        raise refuse_size(what, size.decoded_bytes, budget)
    schema = metadata.schema
    text_columns = [
        schema.column(i).path
        for i in range(len(schema))
        if schema.column(i).physical_type == "BYTE_ARRAY" and schema.column(i).logical_type.type != "DECIMAL"
    ]
    try:
        table = pq.read_table(io.BytesIO(data), read_dictionary=text_columns or None)
    except Exception as error:  # noqa: BLE001 - any Parquet error becomes a plain message
        raise StudioError(
            f"The Parquet file could not be read: {str(error)[:160]}.",
            "Check that it is a complete Parquet file (re-export it).",
        ) from error
    check_rows(table.num_rows, what)
    expanded = sum(_plain_bytes(chunk) for column in table.columns for chunk in column.chunks)
    if budget is not None and expanded > budget:
        raise refuse_size(what, expanded, budget)
    import pyarrow as pa

    plain = pa.schema([field.with_type(_plain_type(field.type)) for field in table.schema])
    return table.cast(plain) if plain != table.schema else table
