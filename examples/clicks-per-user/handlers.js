// User functions named from pipeline.yaml with `fn: ./handlers.js#<export>`.

/** False for events sent by crawlers. */
export function notBot(event) {
  return !(typeof event.userAgent === 'string' && /bot|crawler|spider/i.test(event.userAgent));
}
