"""Output folders written as one transaction: atomic, locked, symlink-safe, one run per set.

Every file flagalign writes (``analyze``, ``heads``, ``compare``, ``trajectory``,
``reproduce``, :meth:`Analysis.save <flagalign.diagnostics.Analysis.save>`, the ``save``
methods of the heads results) goes through an :class:`OutputFolder`. This module sits below
``diagnostics``, ``report``, ``commands`` and ``experiments`` (it imports only
:mod:`flagalign.errors` and :mod:`flagalign._version`), so any layer may use it. Its modules:
:mod:`~flagalign._output.transaction` (:class:`OutputFolder`, the locked, fsync-ed writes and
the commit), :mod:`~flagalign._output.manifest` (run ids, the set manifest, :func:`verify`) and
:mod:`~flagalign._output.csv_cells` (:func:`neutralise_csv_cells`).

The protocol (docs/security.md, "What it writes and how")
----------------------------------------------------------
1. :meth:`OutputFolder.open` (before any computing): create the folder, refuse a folder that is
   not a directory, take an exclusive ``fcntl.flock`` on ``.flagalign.lock`` in it (a second
   run on the same folder fails at once with :class:`~flagalign.errors.InputError`, exit 2;
   nothing waits), probe that a file can be created there and that the disk is not full, and
   finish any commit a killed run left half done (:func:`recover`). Every failure names the
   option (``--out``) and exits 2 before the work starts.
2. ``write_*`` calls (while or after computing): each output goes to a hidden temporary file
   ``.flagalign-<run id>-<name>.tmp`` in the same folder, created with
   ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never through a planted link), then ``fsync``-ed. No
   final name is opened for writing, ever.
3. :meth:`OutputFolder.commit` (after the whole run has computed): the *set manifest*
   ``run-<set>.json`` (run id, time, flagalign version, every file with its SHA-256 and size,
   the previous run's files to remove) is written to a temporary file and ``os.replace``-d
   into place: **that replace is the commit point**. Then every temporary file is
   ``os.replace``-d onto its final name (a symlink there is replaced by the regular file; its
   target is never opened), the previous run's files that this run does not produce are
   unlinked (only names listed in the previous manifest, only regular files), and the
   manifest is rewritten with ``"state": "complete"``. Directory entries are ``fsync``-ed at
   each step.
4. On an exception (bad input, ``Ctrl-C``, a full disk) :meth:`OutputFolder.abort` removes the
   temporary files: the previous set is untouched.

Guarantee
---------
At every instant the committed manifest names one run whose every file is present in full:
before the commit point it is the previous run (the new bytes exist only under hidden temporary
names), after it the new run — each file either under its name or, in the window of the
commit's renames (a few ``rename`` calls, no data written), under its temporary name, which
:func:`recover` (run by the next :meth:`OutputFolder.open` on that folder) moves into place.
:func:`verify` checks a folder read-only: it resolves those temporary names and compares every
file's SHA-256 with the manifest. Each file also carries the run id in its content: the
``run_id`` key of a JSON object, a ``run_id`` column of every CSV (no comment lines), a
``flagalign-run-id`` text chunk in PNGs, the report header — so a reader who only has the
files can tell that they are one run.

Sets
----
A folder may hold several *sets*, each with its own manifest (``run-analyze.json``,
``run-heads.json``, ``run-ridge.json``, ...): a new run of a set replaces only that set's
files, so ``flagalign heads --out X`` does not delete the ``pairs.csv`` that ``analyze`` wrote
there. A name written by a set is taken over from any other set's manifest that listed it.

API for writers (commands, experiments, ``save`` methods)
---------------------------------------------------------
::

    from flagalign._output import output_folder

    with output_folder(out_dir, set_name="ridge") as out:   # exit 2 now if out_dir is unusable
        ... compute ...
        out.write_csv("ridge_rates.csv", frame)      # + run_id column, cells neutralised
        out.write_text("ridge.md", markdown)
        out.write_json("summary.json", {...})         # + "run_id" key
        out.write_figure("ridge.png", fig, dpi=110)   # PNG text chunk flagalign-run-id
        out.path("ridge.md")                          # the final path, for messages
    # committed here; on an exception nothing of this run is left

``output_folder`` also accepts an open :class:`OutputFolder` (then it neither opens nor
commits: the owner does), so a ``save(directory)`` method can take either a path or the
command's transaction.
"""

from .csv_cells import neutralise_csv_cells
from .manifest import LOCK_NAME, MANIFEST_FORMAT, manifest_name, new_run_id, verify
from .transaction import MIN_FREE_BYTES, OutputFolder, output_folder, recover

__all__ = [
    "OutputFolder",
    "output_folder",
    "verify",
    "recover",
    "new_run_id",
    "neutralise_csv_cells",
    "manifest_name",
    "LOCK_NAME",
    "MIN_FREE_BYTES",
]
