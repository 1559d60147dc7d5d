"""The zip container of ``torch.save`` (torch >= 1.6), read without ``torch.load``.

A torch archive is a zip file whose records all sit under one folder (``archive/``):
``data.pkl`` (the pickle), ``data/<key>`` (one record of raw bytes per storage) and a few
bookkeeping records (``version``, ``byteorder``...). TorchScript archives add ``code/``,
``constants.pkl`` and more; other zips hold anything.

:func:`open_torch_archive` reads the central directory twice:

* with torch's own archive reader (``torch._C.PyTorchFileReader``, the one ``torch.load`` and
  ``torch.jit.load`` use), so that the records we accept are exactly the ones torch would see;
* with the strict parser below, for what torch's reader does not say: how each record is
  stored (only uncompressed, unencrypted records are accepted: torch writes no other kind) and
  where its bytes lie (inside the file, not overlapping another record).

The two must agree on every name and data offset; a file that parses differently for the two
(the trick that hid a TorchScript archive from Python's ``zipfile``) is refused. Only the
records a weights-only checkpoint holds are allowed: anything else (TorchScript's code and
constants, unknown records) is refused by name before any byte of it is used.
"""
import io
import re
import struct
from dataclasses import dataclass
from typing import IO, Dict, List, Optional, Tuple

import torch

from .errors import Damaged, Refused
from .tensors import read_exactly_into

#: Bookkeeping records torch writes beside data.pkl (names below the archive folder).
BOOKKEEPING_RECORDS = frozenset({
    'version', '.data/version', 'byteorder', '.data/serialization_id', '.format_version',
    '.storage_alignment'})
_STORAGE_RECORD = re.compile(r'data/[0-9]{1,12}\Z')
_CODE_RECORDS = ('constants.pkl', 'code/', '.data/ts_code/', 'extra/', 'attributes.pkl',
                 'bytecode.pkl', 'mobile_info.json', 'model.json')

_LOCAL = b'PK\x03\x04'
_CENTRAL = b'PK\x01\x02'
_END = b'PK\x05\x06'
_END64 = b'PK\x06\x06'
_END64_LOCATOR = b'PK\x06\x07'
_MAX_RECORDS = 1 << 20
_U32_MAX = 0xFFFFFFFF
_U16_MAX = 0xFFFF


@dataclass(frozen=True)
class Record:
    """One record: its bytes are ``file[offset:offset + size]`` if it is stored as is."""
    name: str
    offset: int
    size: int
    method: int = 0
    flags: int = 0


@dataclass
class TorchArchive:
    """The records of a torch archive that passed every check (names without the folder)."""
    folder: str
    records: Dict[str, Record]
    file: IO[bytes]

    def read(self, name: str) -> bytes:
        """A whole record (for the small ones: data.pkl, byteorder)."""
        record = self.records[name]
        self.file.seek(record.offset)
        data = self.file.read(record.size)
        if len(data) != record.size:
            raise Damaged(f'record {name} ends past the end of the file')
        return data

    def read_into(self, name: str, buffer: memoryview) -> None:
        """Copy record ``name`` into ``buffer`` (exactly its size), with no copy in between."""
        record = self.records[name]
        if buffer.nbytes != record.size:
            raise Damaged(f'record {name} holds {record.size} bytes, '
                          f'the pickle declares {buffer.nbytes}')
        self.file.seek(record.offset)
        read_exactly_into(self.file, buffer, f'record {name}')


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from('<H', data, at)[0]


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from('<I', data, at)[0]


def _u64(data: bytes, at: int) -> int:
    return struct.unpack_from('<Q', data, at)[0]


def _read_at(file: IO[bytes], offset: int, size: int, what: str) -> bytes:
    file.seek(offset)
    data = file.read(size)
    if len(data) != size:
        raise Damaged(f'the zip {what} ends past the end of the file')
    return data


def _end_of_central_directory(file: IO[bytes], size: int) -> Tuple[int, int, int]:
    """(number of records, central directory offset, its size), zip64 included.

    Torch writes no archive comment, so the end record must close the file exactly: a
    comment (where a second archive can hide) is refused.
    """
    if size < 22:
        raise Damaged('too short to be a zip archive')
    end = _read_at(file, size - 22, 22, 'end record')
    if end[:4] != _END:
        raise Damaged('no zip end record at the end of the file: truncated, or data appended')
    disk, cd_disk, here, count, cd_size, cd_offset, comment = struct.unpack_from(
        '<HHHHIIH', end, 4)
    if comment:
        raise Damaged('the zip archive has a comment, which torch never writes')
    if disk or cd_disk or here != count:
        raise Damaged('a multi-disk zip archive')
    directory_end = size - 22
    locator_at = size - 22 - 20
    locator = _read_at(file, locator_at, 20, 'zip64 locator') if locator_at >= 0 else b''
    if locator[:4] == _END64_LOCATOR:  # torch always writes the zip64 end records
        disk64, end64_at, disks = struct.unpack_from('<IQI', locator, 4)
        if disk64 != 0 or disks != 1 or end64_at + 56 > locator_at:
            raise Damaged('a damaged zip64 locator')
        end64 = _read_at(file, end64_at, 56, 'zip64 end record')
        if end64[:4] != _END64:
            raise Damaged('the zip64 locator points at no zip64 end record')
        (record_size, _, _, disk, cd_disk, here64, count64, cd_size64,
         cd_offset64) = struct.unpack_from('<QHHIIQQQQ', end64, 4)
        if disk or cd_disk or here64 != count64 or end64_at + 12 + record_size != locator_at:
            raise Damaged('a damaged zip64 end record')
        for small, large, marker in ((count, count64, _U16_MAX), (cd_size, cd_size64, _U32_MAX),
                                     (cd_offset, cd_offset64, _U32_MAX)):
            if small not in (large, marker):
                raise Damaged('the zip end records disagree')
        count, cd_size, cd_offset = count64, cd_size64, cd_offset64
        directory_end = end64_at
    elif count == _U16_MAX or cd_size == _U32_MAX or cd_offset == _U32_MAX:
        raise Damaged('zip64 sizes without a zip64 end record')
    if count > _MAX_RECORDS:
        raise Damaged(f'{count} records in one archive')
    if cd_offset + cd_size != directory_end:
        raise Damaged('the zip central directory does not end where the end record starts')
    return count, cd_offset, cd_size


def _zip64_extra(extra: bytes, sizes: List[int]) -> List[int]:
    """Replace the 0xFFFFFFFF fields of ``sizes`` (uncompressed, compressed, offset) with the
    zip64 extra field's values, checking that the extra field parses exactly."""
    at, wanted = 0, [i for i, v in enumerate(sizes) if v == _U32_MAX]
    found = False
    while at < len(extra):
        if at + 4 > len(extra):
            raise Damaged('a malformed zip extra field')
        kind, length = struct.unpack_from('<HH', extra, at)
        body = extra[at + 4:at + 4 + length]
        if len(body) != length:
            raise Damaged('a malformed zip extra field')
        if kind == 1:
            if found or len(body) < 8 * len(wanted):
                raise Damaged('a malformed zip64 extra field')
            found = True
            for n, index in enumerate(wanted):
                sizes[index] = _u64(body, 8 * n)
        at += 4 + length
    if wanted and not found:
        raise Damaged('zip64 sizes without a zip64 extra field')
    return sizes


def _strict_directory(file: IO[bytes], size: int) -> Dict[str, Record]:
    """Every record of the zip at ``file``, checked as described in the module docstring."""
    count, cd_offset, cd_size = _end_of_central_directory(file, size)
    directory = _read_at(file, cd_offset, cd_size, 'central directory')
    records: Dict[str, Record] = {}
    spans: List[Tuple[int, int, str]] = []
    at = 0
    for _ in range(count):
        if directory[at:at + 4] != _CENTRAL or at + 46 > len(directory):
            raise Damaged('a damaged zip central directory')
        (_, _, flags, method, _, _, _, compressed, plain, name_len, extra_len, comment_len, disk,
         _, _, local_at) = struct.unpack_from('<HHHHHHIIIHHHHHII', directory, at + 4)
        name_bytes = directory[at + 46:at + 46 + name_len]
        extra = directory[at + 46 + name_len:at + 46 + name_len + extra_len]
        at += 46 + name_len + extra_len + comment_len
        if at > len(directory):
            raise Damaged('a damaged zip central directory')
        plain, compressed, local_at = _zip64_extra(extra, [plain, compressed, local_at])
        try:
            name = name_bytes.decode('utf-8')
        except UnicodeDecodeError:
            raise Damaged('a zip record name that is not UTF-8') from None
        if method == 0 and compressed != plain:
            raise Damaged(f'the zip record {name!r} is stored with two sizes')
        if disk:
            raise Damaged('a multi-disk zip archive')
        if name in records:
            raise Damaged(f'the zip record {name!r} appears twice')
        local = _read_at(file, local_at, 30, 'local header')
        if local[:4] != _LOCAL:
            raise Damaged(f'the zip record {name!r} points at no local header')
        (_, local_flags, local_method, _, _, _, local_compressed, local_plain, local_name_len,
         local_extra_len) = struct.unpack_from('<HHHHHIIIHH', local, 4)
        local_name = _read_at(file, local_at + 30, local_name_len, 'local header')
        if local_name != name_bytes or local_method != method or local_flags != flags:
            raise Damaged(f'the zip record {name!r}: its local header disagrees with the '
                          'central directory')
        if not flags & 0x8 and (local_compressed, local_plain) != (compressed, plain) and \
                _U32_MAX not in (local_compressed, local_plain):
            raise Damaged(f'the zip record {name!r}: its local sizes disagree')
        data_at = local_at + 30 + local_name_len + local_extra_len
        if data_at + compressed > cd_offset:
            raise Damaged(f'the zip record {name!r} runs past the central directory')
        records[name] = Record(name, data_at, plain, method, flags)
        spans.append((local_at, data_at + compressed, name))
    if at != len(directory):
        raise Damaged('the zip central directory holds more than its records')
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise Damaged(f'the zip records {first!r} and {second!r} overlap')
    return records


def _torch_view(file: IO[bytes]) -> Tuple[List[str], Optional[Dict[str, int]]]:
    """The record names (without the folder) and data offsets as torch's reader sees them."""
    file.seek(0)
    try:
        reader = torch._C.PyTorchFileReader(file)
        names = list(reader.get_all_records())
        offsets = None
        if hasattr(reader, 'get_record_offset'):
            offsets = {name: reader.get_record_offset(name) for name in names}
    except RuntimeError as err:
        first = ' '.join(str(err).split('\n')[0].split())[:160]
        raise Damaged(f"torch's zip reader cannot read it ({first})") from None
    return names, offsets


def _split_folder(records: Dict[str, Record]) -> Tuple[str, Dict[str, Record]]:
    folders = {name.split('/', 1)[0] for name in records}
    if len(folders) != 1 or any('/' not in name for name in records):
        raise Damaged('the zip records do not share one folder, as torch writes them')
    folder = folders.pop()
    inner = {}
    for name, record in records.items():
        inner[name[len(folder) + 1:]] = Record(name[len(folder) + 1:], record.offset,
                                               record.size, record.method, record.flags)
    return folder, inner


def _check_names(names) -> None:
    for name in sorted(names):
        if name == 'data.pkl' or name in BOOKKEEPING_RECORDS or _STORAGE_RECORD.match(name):
            continue
        if name.startswith(_CODE_RECORDS):
            raise Refused(f'it is a TorchScript archive, which holds code, not a checkpoint '
                          f'(record {name!r})')
        raise Refused(f'the archive holds the record {name!r}, which a checkpoint of weights '
                      'does not have')
    if 'data.pkl' not in names:
        raise Damaged('the archive has no data.pkl')


def open_torch_archive(file: IO[bytes]) -> TorchArchive:
    """Check the zip at ``file`` (a seekable binary file) and list its records.

    Raises:
        Damaged: not a well-formed zip, or torch's reader and ours disagree.
        Refused: records that a weights-only checkpoint does not have (TorchScript code...),
            compressed or encrypted records.
    """
    size = file.seek(0, io.SEEK_END)
    records = _strict_directory(file, size)
    folder, inner = _split_folder(records)
    _check_names(inner)
    for name, record in sorted(inner.items()):
        if record.flags & 0x41:
            raise Refused(f'the zip record {name!r} is encrypted; torch writes no such record')
        if record.method != 0:
            raise Refused(f'the zip record {name!r} is compressed (method {record.method}); '
                          'torch writes only stored records, and inflating one could exhaust '
                          'memory')
    torch_names, torch_offsets = _torch_view(file)
    if sorted(torch_names) != sorted(inner):
        raise Damaged("torch's zip reader and a strict reading list different records")
    if torch_offsets is not None:
        for name, offset in torch_offsets.items():
            if offset != inner[name].offset:
                raise Damaged(f"torch's zip reader finds record {name!r} at another offset")
    archive = TorchArchive(folder, inner, file)
    if 'byteorder' in inner and archive.read('byteorder') not in (b'little',):
        raise Refused('the archive was written on a big-endian machine, which this reader '
                      'does not convert')
    return archive


def is_zip(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a zip (the test ``torch.load`` uses)."""
    return head[:4] == _LOCAL


