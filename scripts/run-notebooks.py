#!/usr/bin/python3
"""Execute tslab notebooks headlessly with nbclient and report each one.

Run through scripts/test-notebooks.sh, which puts node_modules/.bin (the `tslab` kernel command) on PATH
and sets JUPYTER_PATH to the repository's kernel spec. For each notebook: run every cell with the
`tslab` kernel in the notebook's folder; on an error, print the failing cell and what tslab wrote on
its stderr stream (tslab sends the real TypeScript message there; nbclient's own message is often an
empty `<Error>:`). The executed notebook is written to nb-out/ (or over the original with --in-place).
Ends with the line `N passed, N failed`; exits 1 when any notebook failed.

Usage: run-notebooks.py [--in-place] [--timeout SECONDS] notebook.ipynb...
"""
import argparse
import os
import sys
import time

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from jupyter_client.kernelspec import NoSuchKernel
except ImportError as e:  # the shell script checks first; this is for direct use
    print(f"run-notebooks: missing Python package ({e.name}); install Debian's Jupyter: "
          "apt-get install -y --no-install-recommends jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel jupyter-core",
          file=sys.stderr)
    sys.exit(2)


def text_of(output):
    """The text of a stream or error output."""
    if output.get('output_type') == 'stream':
        t = output.get('text', '')
        return ''.join(t) if isinstance(t, list) else t
    if output.get('output_type') == 'error':
        return f"{output.get('ename', '')}: {output.get('evalue', '')}"
    return ''


def report_failure(path, nb, index, err):
    cell = nb.cells[index] if index is not None and index < len(nb.cells) else None
    first = cell.source.strip().split('\n')[0] if cell is not None and cell.source.strip() else ''
    where = f"cell {index}" if index is not None else "unknown cell"
    print(f"FAIL {path}: {where}: {first}")
    shown = False
    if cell is not None:
        for o in cell.get('outputs', []):
            if (o.get('output_type') == 'stream' and o.get('name') == 'stderr') or o.get('output_type') == 'error':
                text = text_of(o).rstrip()
                if text:
                    # keep the end: a long training log ends with the error
                    lines = text.split('\n')
                    print('    ' + '\n    '.join(lines[-40:]))
                    shown = True
    if not shown:
        print(f"    {type(err).__name__}: {str(err).strip()[:2000]}")


def run(path, in_place, timeout):
    nb = nbformat.read(path, as_version=4)
    current = {'index': None}
    client = NotebookClient(
        nb,
        kernel_name='tslab',
        timeout=timeout,
        resources={'metadata': {'path': os.path.dirname(os.path.abspath(path))}},
        on_cell_start=lambda cell, cell_index: current.__setitem__('index', cell_index),
    )
    t0 = time.time()
    ok = True
    try:
        client.execute()
    except NoSuchKernel:
        print(f"FAIL {path}: no 'tslab' kernel spec; run through scripts/test-notebooks.sh (JUPYTER_PATH=.jupyter/share/jupyter)")
        return False
    except FileNotFoundError as e:
        print(f"FAIL {path}: cannot start the kernel ({e}); is node_modules/.bin on PATH (npm ci)?")
        return False
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        ok = False
        report_failure(path, nb, current['index'], e)
    out = path if in_place else os.path.join('nb-out', os.path.basename(path))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    nbformat.write(nb, out)
    if ok:
        print(f"ok   {path} ({time.time() - t0:.0f} s) -> {out}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='+')
    ap.add_argument('--in-place', action='store_true', help='write the outputs into the notebooks themselves')
    ap.add_argument('--timeout', type=int, default=1800, help='seconds per cell (default 1800)')
    a = ap.parse_args()
    passed = failed = 0
    for path in a.notebooks:
        if run(path, a.in_place, a.timeout):
            passed += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
