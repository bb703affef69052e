"""``assistant monitor serve``: starlette routes (``app``) on uvicorn (``run``, ``protocol``).

Nothing is imported here: the package is loaded by ``monitor serve`` alone, and its
modules import starlette and uvicorn, which no other command may pay for.
"""
