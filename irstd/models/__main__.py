"""``python -m irstd.models IN OUT [--float16]``: rewrite a model file (:func:`irstd.models.weights.main`)."""

from irstd.models.weights import main

raise SystemExit(main())
