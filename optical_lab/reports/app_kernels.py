"""A bounded number of app kernels: the kernel manager ``optical-lab explore`` gives Voilà.

Every page view of the app starts a kernel that loads the teacher and the students (600-730 MB on
MiniLM). Voilà shuts a kernel down when its page says goodbye (``beforeunload``), but a page that
is killed, loses its network or is closed by a browser that skips that request leaves its kernel
running for ever. Two bounds keep the machine usable:

* **culling** (jupyter_server's own): a kernel with no open page (``cull_connected=False``) that has
  been idle for ``cull_idle_timeout`` seconds is shut down, checked every ``cull_interval`` seconds;
* **a cap** (:class:`BoundedKernelManager`, ``max_kernels``): before a new kernel starts while the
  cap is reached, the least recently active kernel *without an open page* is shut down; when every
  kernel has a reader, the new page gets HTTP 503 "too many readers" instead of a kernel.
"""

from __future__ import annotations

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer


class BoundedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` that keeps at most ``max_kernels`` kernels alive (see the module doc)."""

    max_kernels = Integer(2, config=True, help="kernels alive at once; 0: no cap")

    def _readers(self, kernel_id: str) -> int:
        return self._kernel_connections.get(kernel_id, 0)

    async def start_kernel(self, *args, **kwargs):
        while self.max_kernels and len(self.list_kernel_ids()) >= self.max_kernels:
            unread = [k for k in self.list_kernel_ids() if not self._readers(k)]
            if not unread:
                raise web.HTTPError(503, f"{self.max_kernels} readers are using the app: close a page or try later")
            oldest = min(unread, key=lambda k: self.get_kernel(k).last_activity)
            self.log.info("kernel cap %d reached: shutting down %s (no open page)", self.max_kernels, oldest)
            await self.shutdown_kernel(oldest)
        return await super().start_kernel(*args, **kwargs)
