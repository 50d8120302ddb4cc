// Pagination: every Tenantry List call takes pageSize/pageToken and answers nextPageToken
// (empty on the last page). These async iterators follow the tokens:
//
//   for await (const project of paginate(client.projects.listProjects, { parent: org })) …
//
// `paginate` yields the items of the response's one array field (name it with `items`
// when a response has several); `pages` yields whole responses.

type Page = { nextPageToken: string };
type PageRequest = { pageSize?: number; pageToken?: string };

/** The element types of a response's array fields. */
export type ItemOf<R> = {
  [K in keyof R]-?: R[K] extends readonly (infer E)[] ? (K extends "$unknown" ? never : E) : never;
}[keyof R];

/** Every page of a List call, from `request` (whose pageToken may start midway). */
export async function* pages<Req extends PageRequest, Res extends Page>(
  method: (request: Req) => Promise<Res>,
  request: Req,
  options: { pageSize?: number } = {},
): AsyncGenerator<Res> {
  let current: Req | undefined =
    options.pageSize === undefined ? { ...request } : { ...request, pageSize: options.pageSize };
  while (current) {
    const response = await method(current);
    yield response;
    const token = response.nextPageToken;
    if (!token) return;
    if (token === current.pageToken) {
      throw new Error("the server answered the page token it was sent: stopping");
    }
    current = { ...current, pageToken: token };
  }
}

/** Every item of a List call, page after page. */
export async function* paginate<Req extends PageRequest, Res extends Page>(
  method: (request: Req) => Promise<Res>,
  request: Req,
  options: { pageSize?: number; items?: keyof Res & string } = {},
): AsyncGenerator<ItemOf<Res>> {
  for await (const page of pages(method, request, options)) {
    const field = options.items ?? itemsField(page);
    yield* (page as Record<string, unknown>)[field] as ItemOf<Res>[];
  }
}

function itemsField(page: object): string {
  const arrays = Object.entries(page)
    .filter(([key, value]) => key !== "$unknown" && Array.isArray(value))
    .map(([key]) => key);
  if (arrays.length !== 1) {
    throw new Error(`the response has ${arrays.length} array fields (${arrays.join(", ")}): pass items`);
  }
  return arrays[0];
}
