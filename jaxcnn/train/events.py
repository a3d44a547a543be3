"""TensorBoard scalars without TensorFlow.

clu's metric writers import TensorFlow to write event files; the tensorboard package's own
EventFileWriter (the one PyTorch's SummaryWriter uses) writes the same files without it.
"""
import os
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class ScalarWriter:
  """`write_scalars(step, {name: value})` into WORKDIR/events.out.tfevents.*, as TensorBoard
  reads them (`tensorboard --logdir WORKDIR`)."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    self._writer = EventFileWriter(logdir)

  @property
  def path(self) -> str:
    return self._writer.get_filename()

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                           summary=summary_pb2.Summary(value=values)))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
