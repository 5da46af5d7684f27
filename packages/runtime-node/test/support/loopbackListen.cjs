// Preloaded into the kinesis-local emulator (which has no setting for its address): every server
// it starts listens on the loopback address only, and it exits when the process that started it is gone.
const net = require('node:net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'object' && args[0] !== null)
    return listen.call(this, { ...args[0], host: '127.0.0.1' }, ...args.slice(1));
  if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    const rest = args.slice(1).filter((a) => typeof a === 'function' || typeof a === 'number');
    const callback = rest.find((a) => typeof a === 'function');
    const backlog = rest.find((a) => typeof a === 'number');
    return backlog === undefined
      ? listen.call(this, Number(args[0]), '127.0.0.1', callback)
      : listen.call(this, Number(args[0]), '127.0.0.1', backlog, callback);
  }
  return listen.apply(this, args);
};

const parent = Number(process.env.KINESIS_LOCAL_PARENT_PID);
if (parent > 0)
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(0);
    }
  }, 1000).unref();
