"""Dynamic batching: merges concurrent requests to one signature into one call.

Works like TF Serving's shared batch scheduler: requests for the same
servable and signature wait up to `batch_timeout_micros` (or until
`max_batch_size` examples are queued) and run as one batch on one of
`num_batch_threads` threads; the outputs are split back along axis 0. With
`pad_variable_length_inputs`, inputs that differ only in axis 1 are padded
(zeros, empty strings) so that they can be merged. Requests that cannot be
merged with the others run alone.
"""

import threading
import time

import numpy as np

from serving._errors import ServingError


class _Task:
    """One request waiting in a batch queue."""

    def __init__(self, arrays, size, output_filter):
        self.arrays = arrays
        self.size = size
        self.output_filter = tuple(output_filter)
        self.enqueued_at = time.monotonic()
        self.done = threading.Event()
        self.result = None
        self.error = None

    def finish(self, result=None, error=None):
        self.result, self.error = result, error
        self.done.set()


def _batch_size(arrays):
    """The common axis-0 size of `arrays`, or None if they have none."""
    sizes = {array.shape[0] if array.ndim else None for array in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop()


def _pad_axis1(array, length):
    """Pads axis 1 of `array` to `length` with zeros or empty strings."""
    if array.shape[1] == length:
        return array
    pad_shape = list(array.shape)
    pad_shape[1] = length - array.shape[1]
    if array.dtype == object:
        padding = np.full(pad_shape, b"", dtype=object)
    else:
        padding = np.zeros(pad_shape, dtype=array.dtype)
    return np.concatenate([array, padding], axis=1)


class DynamicBatcher:
    """Queues requests per (servable, signature) and runs them in merged batches.

    Args:
        params: BatchingParameters. The `--batching_parameters_file` values.
    """

    def __init__(self, params):
        self.params = params
        self._timeout = params.batch_timeout_micros / 1e6
        self._queues = {}  # (servable, signature) -> list of _Task
        self._condition = threading.Condition()
        self._free_threads = max(params.num_batch_threads, 1)
        self._running = True
        self._scheduler = threading.Thread(
            target=self._schedule, name="batch-scheduler", daemon=True
        )
        self._scheduler.start()

    def stop(self):
        """Stops the scheduler; queued requests get UNAVAILABLE."""
        with self._condition:
            self._running = False
            pending = [task for tasks in self._queues.values() for task in tasks]
            self._queues.clear()
            self._condition.notify_all()
        for task in pending:
            task.finish(error=ServingError("UNAVAILABLE", "Server is shutting down"))

    def run(self, servable, signature_name, arrays, output_filter=()):
        """Runs a request through the batch queue and returns its outputs.

        Args:
            servable: Servable. The model version to run.
            signature_name: str. The signature to run.
            arrays: dict of str to np.ndarray. Checked inputs.
            output_filter: sequence of str. Outputs to return (all if empty).
        """
        size = _batch_size(arrays)
        if size is None or size == 0:
            return servable.run(signature_name, arrays, output_filter)
        if size > self.params.max_batch_size:
            raise ServingError("INVALID_ARGUMENT", f"Task size {size} is larger than maximum input "
                                                   f"batch size {self.params.max_batch_size}")
        task = _Task(arrays, size, output_filter)
        key = (servable, signature_name or "serving_default")
        limit = self.params.max_enqueued_batches * self.params.max_batch_size
        with self._condition:
            if not self._running:
                raise ServingError("UNAVAILABLE", "Server is shutting down")
            queue = self._queues.setdefault(key, [])
            if sum(queued.size for queued in queue) + size > limit:
                raise ServingError(
                    "UNAVAILABLE",
                    "The batch scheduling queue to which this task was submitted is full",
                )
            queue.append(task)
            self._condition.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def _schedule(self):
        max_size = self.params.max_batch_size
        with self._condition:
            while self._running:
                now = time.monotonic()
                wait = None
                for key in list(self._queues):
                    queue = self._queues[key]
                    if not queue:
                        del self._queues[key]
                        continue
                    deadline = queue[0].enqueued_at + self._timeout
                    full = sum(task.size for task in queue) >= max_size
                    if (full or now >= deadline) and self._free_threads > 0:
                        batch = [queue.pop(0)]
                        total = batch[0].size
                        while queue and total + queue[0].size <= max_size:
                            total += queue[0].size
                            batch.append(queue.pop(0))
                        self._free_threads -= 1
                        threading.Thread(
                            target=self._run_batch, args=(key, batch),
                            name="batch-runner", daemon=True,
                        ).start()
                    elif not full and now < deadline:
                        wait = min(wait, deadline - now) if wait else deadline - now
                self._condition.wait(timeout=wait)

    def _run_batch(self, key, batch):
        try:
            for group in self._mergeable_groups(batch):
                self._run_group(key, group)
        finally:
            with self._condition:
                self._free_threads += 1
                self._condition.notify_all()

    def _merge_key(self, task):
        """Tasks with equal keys can be concatenated (after padding)."""
        parts = []
        for name in sorted(task.arrays):
            array = task.arrays[name]
            tail = array.shape[1:]
            if self.params.pad_variable_length_inputs and array.ndim >= 2:
                tail = (None,) + array.shape[2:]
            parts.append((name, array.dtype.str, tail))
        return (tuple(parts), task.output_filter)

    def _mergeable_groups(self, batch):
        groups = {}
        for task in batch:
            groups.setdefault(self._merge_key(task), []).append(task)
        return list(groups.values())

    def _run_group(self, key, group):
        servable, signature_name = key
        output_filter = group[0].output_filter
        if len(group) == 1:
            self._run_alone(servable, signature_name, group[0])
            return
        merged = {}
        for name in group[0].arrays:
            parts = [task.arrays[name] for task in group]
            if parts[0].ndim >= 2:
                length = max(part.shape[1] for part in parts)
                parts = [_pad_axis1(part, length) for part in parts]
            merged[name] = np.concatenate(parts, axis=0)
        total = sum(task.size for task in group)
        try:
            outputs = servable.run(signature_name, merged, output_filter)
        except ServingError:
            # One bad request must not fail the others: retry them alone.
            for task in group:
                self._run_alone(servable, signature_name, task)
            return
        except Exception as error:
            for task in group:
                task.finish(error=ServingError("INTERNAL", str(error)))
            return
        if any(np.ndim(value) == 0 or np.shape(value)[0] != total
               for value in outputs.values()):
            # Outputs not batched along axis 0 cannot be split per request.
            for task in group:
                self._run_alone(servable, signature_name, task)
            return
        start = 0
        for task in group:
            end = start + task.size
            task.finish(result={name: value[start:end] for name, value in outputs.items()})
            start = end

    @staticmethod
    def _run_alone(servable, signature_name, task):
        try:
            task.finish(result=servable.run(signature_name, task.arrays, task.output_filter))
        except ServingError as error:
            task.finish(error=error)
        except Exception as error:
            task.finish(error=ServingError("INTERNAL", str(error)))
