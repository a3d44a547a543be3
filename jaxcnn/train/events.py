"""TensorBoard scalars without TensorFlow: an event file as tf.summary writes one.

Written here because the libraries that write event files import TensorFlow where it is
installed (clu's metric writers directly; the tensorboard package's EventFileWriter through
its `tf.io.gfile` compatibility layer), and a run on data in memory never needs it. The
format is small: a sequence of TFRecords (length, masked CRC-32C of the length, data, masked
CRC-32C of the data), each holding an `Event` protocol buffer, whose classes come with the
tensorboard package; the first event names the file's version.
"""
import functools
import os
import socket
import struct
import time

from tensorboard.compat.proto import event_pb2, summary_pb2


@functools.cache
def _crc32c_table() -> tuple[int, ...]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli, reflected
    table.append(crc)
  return tuple(table)


def crc32c(data: bytes) -> int:
  table, crc = _crc32c_table(), 0xFFFFFFFF
  for byte in data:
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  """TFRecord's masking of a CRC (a rotation and a constant)."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
  """`data` framed as one TFRecord."""
  length = struct.pack("<Q", len(data))
  return (length + struct.pack("<I", _masked_crc(length)) + data
          + struct.pack("<I", _masked_crc(data)))


class ScalarWriter:
  """`write_scalars(step, {name: value})` into WORKDIR/events.out.tfevents.*, as TensorBoard
  reads them (`tensorboard --logdir WORKDIR`)."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    now = time.time()
    name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.0.v2"
    self.path = os.path.join(logdir, name)
    self._file = open(self.path, "ab")
    self._write(event_pb2.Event(wall_time=now, file_version="brain.Event:2"))

  def _write(self, event) -> None:
    self._file.write(record(event.SerializeToString()))

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                summary=summary_pb2.Summary(value=values)))

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    if not self._file.closed:
      self._file.close()
