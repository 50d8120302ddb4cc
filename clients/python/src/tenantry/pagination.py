"""Pagination: every Tenantry List call takes `page_size`/`page_token` and answers
`next_page_token` (empty on the last page). These iterators follow the tokens for you.

    for project in paginate(client.projects.ListProjects, ListProjectsRequest(parent=org)):
        ...

`paginate` yields the items of the response's one repeated field (name it with `items=`
when a response has several); `pages` yields whole responses.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Optional, TypeVar

from google.protobuf import message

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)


def items_field(response: message.Message, items: Optional[str] = None) -> str:
    """The name of the repeated field holding a List response's items."""
    if items is not None:
        return items
    repeated = [
        f.name
        for f in response.DESCRIPTOR.fields
        if _is_repeated(f) and not (f.message_type and f.message_type.GetOptions().map_entry)
    ]
    if len(repeated) != 1:
        raise ValueError(
            f"{response.DESCRIPTOR.full_name} has {len(repeated)} repeated fields "
            f"({', '.join(repeated) or 'none'}): pass items="
        )
    return repeated[0]


def _is_repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == field.LABEL_REPEATED)


def _first(request: Req, page_size: Optional[int]) -> Req:
    first = type(request)()
    first.CopyFrom(request)
    if page_size is not None:
        first.page_size = page_size  # type: ignore[attr-defined]
    return first


def _next(request: Req, response: message.Message) -> Optional[Req]:
    token = response.next_page_token  # type: ignore[attr-defined]
    if not token:
        return None
    if token == request.page_token:  # type: ignore[attr-defined]
        raise RuntimeError("the server answered the page token it was sent: stopping")
    following = type(request)()
    following.CopyFrom(request)
    following.page_token = token  # type: ignore[attr-defined]
    return following


def pages(
    method: Callable[[Req], Resp], request: Req, *, page_size: Optional[int] = None
) -> Iterator[Resp]:
    """Every page of a List call, from `request` (whose `page_token` may start midway)."""
    current: Optional[Req] = _first(request, page_size)
    while current is not None:
        response = method(current)
        yield response
        current = _next(current, response)


def paginate(
    method: Callable[[Req], Resp],
    request: Req,
    *,
    items: Optional[str] = None,
    page_size: Optional[int] = None,
) -> Iterator[Any]:
    """Every item of a List call, page after page."""
    for page in pages(method, request, page_size=page_size):
        yield from getattr(page, items_field(page, items))


async def pages_async(
    method: Callable[[Req], Awaitable[Resp]], request: Req, *, page_size: Optional[int] = None
) -> AsyncIterator[Resp]:
    """`pages` for the asyncio client."""
    current: Optional[Req] = _first(request, page_size)
    while current is not None:
        response = await method(current)
        yield response
        current = _next(current, response)


async def paginate_async(
    method: Callable[[Req], Awaitable[Resp]],
    request: Req,
    *,
    items: Optional[str] = None,
    page_size: Optional[int] = None,
) -> AsyncIterator[Any]:
    """`paginate` for the asyncio client: `async for item in paginate_async(...)`."""
    async for page in pages_async(method, request, page_size=page_size):
        for item in getattr(page, items_field(page, items)):
            yield item
