/** Types of handlers.js, for the TypeScript version of the pipeline. */
export declare function notBot(event: { userAgent?: string }): boolean;
