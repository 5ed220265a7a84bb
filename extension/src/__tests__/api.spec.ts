import { ServerConnection } from '@jupyterlab/services';

import { WorkbenchAPI, WorkbenchAPIError } from '../api';

/** A server stand-in that answers with an ETag and honours If-None-Match like tornado does. */
function fakeServer() {
  const seen: Array<{ url: string; ifNoneMatch: string | null }> = [];
  let body = JSON.stringify({ runs: [{ id: 'a', status: 'completed' }], total: 1, offset: 0, limit: 100, counts: {} });
  let status = 200;
  const fetch = async (input: RequestInfo | URL): Promise<Response> => {
    const request = input as Request;
    const ifNoneMatch = request.headers.get('If-None-Match');
    seen.push({ url: request.url, ifNoneMatch });
    if (status !== 200) {
      return new Response(JSON.stringify({ message: 'no run' }), { status });
    }
    const etag = `"${body.length}"`;
    if (ifNoneMatch === etag) {
      return new Response(null, { status: 304, headers: { ETag: etag } });
    }
    return new Response(body, { status: 200, headers: { ETag: etag, 'Content-Type': 'application/json' } });
  };
  return {
    seen,
    settings: ServerConnection.makeSettings({ baseUrl: 'http://localhost/', fetch }),
    setBody: (b: object) => (body = JSON.stringify(b)),
    setStatus: (s: number) => (status = s)
  };
}

describe('WorkbenchAPI', () => {
  it('revalidates the runs list with its ETag and reuses the answer on a 304', async () => {
    const server = fakeServer();
    const api = new WorkbenchAPI(server.settings);
    const first = await api.listRuns(0, 100);
    expect(first.runs.map(r => r.id)).toEqual(['a']);
    expect(server.seen[0].ifNoneMatch).toBeNull();
    const second = await api.listRuns(0, 100);
    expect(server.seen[1].ifNoneMatch).toBe(`"${JSON.stringify(first).length}"`);
    expect(second).toBe(first); // not downloaded again
    server.setBody({ runs: [{ id: 'b', status: 'running' }, { id: 'a', status: 'completed' }], total: 2 });
    const third = await api.listRuns(0, 100);
    expect(third.runs.map(r => r.id)).toEqual(['b', 'a']);
    await api.listRuns(0, 200); // another page is another answer
    expect(server.seen[3].ifNoneMatch).toBeNull();
  });

  it('reports the server message and forgets the answer after an error', async () => {
    const server = fakeServer();
    const api = new WorkbenchAPI(server.settings);
    await api.getRun('r1');
    server.setStatus(404);
    await expect(api.getRun('r1')).rejects.toEqual(new WorkbenchAPIError('no run', 404));
    server.setStatus(200);
    await api.getRun('r1');
    expect(server.seen.map(s => s.ifNoneMatch === null)).toEqual([true, false, true]);
  });
});
