// Start-up, before the modules: a classic script with no imports (index.html loads it
// `async`, first), so it runs as soon as it arrives instead of after the module graph has
// loaded, compiled and run. It opens the page's WebSocket, on an auction's page already
// subscribed to that auction (`/v1/ws?subscribe=<id>`: the server sends the snapshot right
// after the handshake, even while this page's main thread is busy compiling the modules),
// so the handshake and the server's snapshot read overlap the module loads. live.js adopts the socket (`window.__marteloBoot`) and replays, in order,
// what arrived before it took over. Nothing else happens here: no DOM, no state.
(() => {
  const auction = /^\/auctions\/(\d{1,16})$/.exec(location.pathname);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  let socket;
  try {
    const query = auction ? `?subscribe=${auction[1]}` : '';
    socket = new WebSocket(`${scheme}://${location.host}/v1/ws${query}`);
  } catch {
    return;
  }
  // At most this many messages wait for live.js (it starts within a second; a snapshot and
  // a few events are what arrives meanwhile).
  const MESSAGES_MAX = 10_000;
  const subscribed = auction ? Number(auction[1]) : null;
  const boot = { socket, openedAt: null, subscribed, messages: [], overflow: false };
  socket.onopen = () => {
    boot.openedAt = performance.now();
  };
  socket.onmessage = (message) => {
    if (boot.messages.length < MESSAGES_MAX) boot.messages.push([message.data, performance.now()]);
    else boot.overflow = true;
  };
  window.__marteloBoot = boot;
})();
