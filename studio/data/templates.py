"""The training chat template, as the Data lint sees it: re-exported from studio.train.templates.

One implementation decides which template carries the `{% generation %}` markers (the model's own, TRL's,
or the studio's for its family), so lint token counts and training always agree. Kept as a module so
the Data capability's imports stay stable.
"""

from studio.train.templates import (  # noqa: F401 - re-exported
    chatml_template,
    default_system_prompt,
    has_generation_markers,
    is_chatml,
    render,
    training_template,
)
