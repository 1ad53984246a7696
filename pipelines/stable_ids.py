"""Transform ids that an upgraded job shares with the job whose savepoint it restores.

Beam's Python SDK names each transform in the pipeline proto `ref_AppliedPTransform_<label>_<n>`, where
n counts the transforms met before it. On Flink, the runner files a stateful DoFn's timers under that
id (Beam 2.54, TimerReceiverFactory.encodeToTimerDataTimerId), and the operator that holds a side
input's values gets it as its uid. One step added upstream of detection (a parsing step, a filter)
shifts every n after it: the restored job then either has its side-input operator refused by Flink
or holds timers filed under ids it no longer has. Labels do not move when a step is added elsewhere,
so the ids here are made from the label alone (unique in a pipeline), with a digest of it so that
labels that normalise or truncate alike stay apart. Everything else keeps Beam's ids.

What Flink maps a savepoint's state by is a separate question, answered by labels too (README,
"Upgrading a running job").
"""

from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.pipeline import AppliedPTransform, ComponentIdMap


class LabelTransformIds(ComponentIdMap):
    """A ComponentIdMap whose transform ids depend on their full label only."""

    def _unique_ref(self, obj=None, obj_type=None, label=None):
        if obj_type is not AppliedPTransform or not label:
            return super()._unique_ref(obj, obj_type, label)
        digest = hashlib.blake2b(label.encode("utf-8"), digest_size=6).hexdigest()
        return f"{self.namespace}_AppliedPTransform_{self._normalize(label)[:80]}_{digest}"


def use_label_transform_ids(pipeline: beam.Pipeline) -> None:
    """Before anything is applied to `pipeline` (an external transform is given ids as it is applied)."""
    if not isinstance(pipeline.component_id_map, LabelTransformIds):
        pipeline.component_id_map = LabelTransformIds(pipeline.component_id_map.namespace)
