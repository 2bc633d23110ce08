"""What a NIfTI file's voxel data block holds, read from the raw bytes rather than through ITK.

ITK's NIfTI reader hides two kinds of damage: it fills a truncated data block with zeros, and
it turns NaN and infinite voxels into 0. Both are found here by parsing the header (NIfTI-1 or
NIfTI-2, either byte order) and streaming the data block in chunks, so a large scan needs no
second full copy in memory.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

CHUNK_BYTES = 1 << 22
"""Bytes of voxel data decoded at a time (4 MiB, a multiple of every voxel size)."""

HEADER_BYTES = (348, 540)
"""Header size in bytes (the file's first int32, ``sizeof_hdr``) of NIfTI-1 and NIfTI-2."""

FLOATING_DATATYPES = {16: "f4", 64: "f8", 32: "c8", 1792: "c16"}
"""NIfTI ``datatype`` codes that can hold NaN or infinity (float32, float64, complex64,
complex128) and their numpy type without byte order; integer types cannot, and float128 has
no portable numpy type."""


@dataclass(frozen=True)
class DataBlock:
    """Where a NIfTI file's voxel data lies and how it is stored.

    Attributes
    ----------
    offset_bytes : byte at which the voxel data starts in the (uncompressed) file.
    size_bytes : length of the voxel data in bytes.
    floating_dtype : numpy type of the voxels, byte order included, if they can hold NaN or
        infinity; None for integer (and other) types.
    """

    offset_bytes: int
    size_bytes: int
    floating_dtype: np.dtype | None


@dataclass(frozen=True)
class VoxelCheck:
    """What the data block of a NIfTI file holds.

    Attributes
    ----------
    complete : the file holds every byte its header promises and could be read to the end.
    nan_count : NaN voxels in the data read (a complex voxel counts if either part is NaN).
    inf_count : infinite voxels in the data read (likewise).
    """

    complete: bool
    nan_count: int = 0
    inf_count: int = 0


def check_voxels(path: Path) -> VoxelCheck | None:
    """Check that a .nii or .nii.gz file is complete and count its NaN and infinite voxels.

    Integer data is not decoded (it cannot hold NaN); only its length is checked.

    Parameters
    ----------
    path : the NIfTI file; a name ending in .gz is read through gzip.

    Returns
    -------
    VoxelCheck, with ``complete`` False if the file ends early or cannot be read (a damaged
    gzip stream); None if it does not start with a usable NIfTI-1 or NIfTI-2 header.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            header = _read_header(stream)
            block = parse_header(header)
            if block is None:
                return None
            if block.floating_dtype is None:
                end = block.offset_bytes + block.size_bytes
                return VoxelCheck(complete=_seek_at_most(stream, end) == end)
            return _count_non_finite(stream, block)
    except (OSError, EOFError, zlib.error):
        return VoxelCheck(complete=False)


def parse_header(header: bytes) -> DataBlock | None:
    """The data block a NIfTI-1 or NIfTI-2 header describes; None if ``header`` is not one.

    Parameters
    ----------
    header : the file's first bytes (at least 348 for NIfTI-1, 540 for NIfTI-2).
    """
    for byte_order in "<>":
        fields = _header_fields(header, byte_order)
        if fields is not None:
            break
    else:
        return None
    datatype, bitpix, dims, vox_offset, header_size = fields
    n_dims = int(dims[0])
    if not 1 <= n_dims <= 7 or bitpix <= 0 or not math.isfinite(vox_offset):
        return None
    voxels = math.prod(max(int(d), 1) for d in dims[1 : n_dims + 1])  # exact: no int64 overflow
    code = FLOATING_DATATYPES.get(datatype)
    dtype = np.dtype(byte_order + code) if code and np.dtype(code).itemsize * 8 == bitpix else None
    return DataBlock(offset_bytes=max(int(vox_offset), header_size),
                     size_bytes=voxels * bitpix // 8, floating_dtype=dtype)


def _read_header(stream: BinaryIO) -> bytes:
    """Read the header (as many bytes as its first int32, ``sizeof_hdr``, says) and no more."""
    start = stream.read(4)
    for byte_order in "<>":
        header_size = struct.unpack(byte_order + "i", start)[0] if len(start) == 4 else 0
        if header_size in HEADER_BYTES:
            return start + stream.read(header_size - 4)
    return start


def _header_fields(header: bytes, byte_order: str) -> tuple | None:
    """(datatype, bitpix, dim[8], vox_offset, sizeof_hdr) read in one byte order, or None.

    Offsets in bytes are those of the NIfTI-1 (nifti1.h) and NIfTI-2 (nifti2.h) headers.
    """
    header_size = struct.unpack(byte_order + "i", header[:4])[0] if len(header) >= 4 else 0
    if header_size not in HEADER_BYTES or len(header) < header_size:
        return None
    if header_size == 348:
        datatype, bitpix = struct.unpack(byte_order + "2h", header[70:74])
        dims = struct.unpack(byte_order + "8h", header[40:56])
        vox_offset = struct.unpack(byte_order + "f", header[108:112])[0]
    else:
        datatype, bitpix = struct.unpack(byte_order + "2h", header[12:16])
        dims = struct.unpack(byte_order + "8q", header[16:80])
        vox_offset = struct.unpack(byte_order + "q", header[168:176])[0]
    return datatype, bitpix, dims, vox_offset, header_size


def _count_non_finite(stream: BinaryIO, block: DataBlock) -> VoxelCheck:
    """Decode the floating-point data block chunk by chunk and count NaN and infinite voxels."""
    dtype = block.floating_dtype
    remaining = block.size_bytes
    nan_count = inf_count = 0
    at_data = _seek_at_most(stream, block.offset_bytes) == block.offset_bytes
    while at_data and remaining > 0:
        chunk = stream.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        # a partial last voxel only occurs in a truncated file, which is reported as such
        values = np.frombuffer(chunk, dtype=dtype, count=len(chunk) // dtype.itemsize)
        nan_count += int(np.count_nonzero(np.isnan(values)))
        inf_count += int(np.count_nonzero(np.isinf(values)))
    return VoxelCheck(complete=at_data and remaining == 0, nan_count=nan_count,
                      inf_count=inf_count)


def _seek_at_most(stream: BinaryIO, target: int) -> int:
    """Move ``stream`` forward to byte ``target`` or to its end, whichever is first.

    Returns the byte reached. A gzip stream is decompressed up to there (and stops at its
    end); a plain file would seek past its end, so the target is capped at its size.
    """
    if isinstance(stream, gzip.GzipFile):
        return stream.seek(target)
    return stream.seek(min(target, os.fstat(stream.fileno()).st_size))
