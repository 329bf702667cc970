"""Another name of `lskd.models.checkpoint`, for importers written before it moved
down a layer (models may not import train): the same module object, so patches and
`isinstance` checks see one module. New code imports `lskd.models.checkpoint`."""

import sys

from lskd.models import checkpoint

sys.modules[__name__] = checkpoint
