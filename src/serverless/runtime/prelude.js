// The glue between a site's script and fazt, evaluated once per sandbox. Its value is
// {begin, finish}, which only the runtime holds: `host` (the one native function) is reachable
// from the script only through the functions `begin` puts on globalThis for one invocation.
// Each of them passes that invocation's number, so a reference kept past its request
// throws instead of reaching a later request's host. The built-ins used here are taken now,
// before the site's script could replace them.
(function (host) {
  "use strict";
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const freeze = Object.freeze;
  const keys = Object.keys;
  const isArray = Array.isArray;
  const defineProperty = Object.defineProperty;
  const toString = String;

  // A console argument as a log line shows it: objects as JSON, errors as "Name: message".
  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return toString(value);
    if (value !== null && typeof value === "object") {
      try {
        const json = stringify(value);
        if (json !== undefined) return json;
      } catch (e) {
        // A cycle: fall through to String().
      }
    }
    return toString(value);
  }

  function needQuery(what, query) {
    if (query === undefined) {
      throw new TypeError(what + ": a query is required ({} for every document)");
    }
    return stringify(query);
  }

  // The per-invocation objects a script reaches: console, fazt, fetch (and kv and the env
  // getter for the root style's db and process.env, socket for its v0.7.1 global), each
  // bound to one invocation's `call`.
  function tools(call) {
    const line = (level) =>
      function () {
        const parts = [];
        for (let i = 0; i < arguments.length; i++) parts.push(show(arguments[i]));
        call("log", level, parts.join(" "));
      };
    const console = freeze({
      log: line("log"),
      info: line("info"),
      warn: line("warn"),
      error: line("error"),
      debug: line("log"),
    });

    let env;
    const getEnv = () => (env === undefined ? (env = freeze(parse(call("env")))) : env);

    const kv = freeze({
      get(key) {
        const value = call("kv_get", toString(key));
        return value === undefined ? null : parse(value);
      },
      set(key, value, ttlMs) {
        const json = stringify(value);
        if (json === undefined) {
          throw new TypeError("kv.set: a " + typeof value + " cannot be stored (JSON values only)");
        }
        call("kv_set", toString(key), json, ttlMs == null ? undefined : ttlMs);
      },
      delete(key) {
        return call("kv_delete", toString(key));
      },
      list(prefix) {
        return parse(call("kv_list", prefix == null ? "" : toString(prefix)));
      },
    });

    const ds = freeze({
      insert(coll, doc) {
        return call("ds_insert", toString(coll), stringify(doc));
      },
      find(coll, query) {
        return parse(call("ds_find", toString(coll), stringify(query == null ? {} : query)));
      },
      findOne(coll, query) {
        const q = typeof query === "string" ? { id: query } : query == null ? {} : query;
        const docs = parse(call("ds_find", toString(coll), stringify(q), 1));
        return docs.length > 0 ? docs[0] : null;
      },
      update(coll, query, changes) {
        return call("ds_update", toString(coll), needQuery("ds.update", query), stringify(changes));
      },
      delete(coll, query) {
        return call("ds_delete", toString(coll), needQuery("ds.delete", query));
      },
    });

    // The site's WebSocket clients (at wss://<site>/ws): a string is sent as is, anything
    // else as its JSON, both as a text message.
    const socket = freeze({
      broadcast(msg) {
        const text = typeof msg === "string" ? msg : stringify(msg);
        if (text === undefined) {
          throw new TypeError("socket.broadcast: a " + typeof msg + " cannot be sent (a string or a JSON value)");
        }
        return call("socket_broadcast", text);
      },
      clients() {
        return call("socket_clients");
      },
    });

    const fazt = { app: freeze({ kv, ds }), socket };
    defineProperty(fazt, "env", { get: getEnv, enumerable: true });
    freeze(fazt);

    function fetch(url, options) {
      const o = options == null ? {} : options;
      const headers = [];
      const given = o.headers == null ? [] : isArray(o.headers) ? o.headers : keys(o.headers).map((n) => [n, o.headers[n]]);
      for (const [name, value] of given) headers.push([toString(name), toString(value)]);
      let body = o.body;
      if (body != null && typeof body !== "string") {
        body = stringify(body);
        if (!headers.some(([n]) => n.toLowerCase() === "content-type")) {
          headers.push(["content-type", "application/json"]);
        }
      }
      const method = o.method == null ? "GET" : toString(o.method).toUpperCase();
      const r = parse(call("fetch", toString(url), method, stringify(headers), body == null ? undefined : body));
      return freeze({
        status: r.status,
        ok: r.status >= 200 && r.status < 300,
        url: r.url,
        headers: freeze(r.headers),
        body: r.body,
        text() {
          return r.body;
        },
        json() {
          return parse(r.body);
        },
      });
    }
    return { console, fazt, fetch, kv, getEnv, socket };
  }

  // A global that is made on first read (and can be replaced, as a plain one could).
  function lazy(g, name, get) {
    const settle = (value) =>
      defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
    defineProperty(g, name, {
      configurable: true,
      enumerable: false,
      get() {
        const value = get();
        settle(value);
        return value;
      },
      set: settle,
    });
  }

  function begin(gen, root, request) {
    const call = (op, a, b, c, d) => host(gen, op, a, b, c, d);
    const state = { root, response: undefined, out: undefined };

    // Built on first use only: most handlers touch one or two of these, and building
    // them all (a score of closures, frozen objects) cost more than the handler itself.
    let made;
    const make = () => (made === undefined ? (made = tools(call)) : made);
    const g = globalThis;
    lazy(g, "console", () => make().console);
    lazy(g, "fazt", () => make().fazt);
    lazy(g, "fetch", () => make().fetch);
    if (root) {
      const out = { status: 200, headers: {}, body: undefined, type: undefined };
      state.out = out;
      const res = freeze({
        status(code) {
          out.status = code;
          return res;
        },
        header(name, value) {
          out.headers[toString(name)] = toString(value);
          return res;
        },
        send(body) {
          if (body === undefined || body === null) out.body = "";
          else if (typeof body === "string") out.body = body;
          else return res.json(body);
          out.type = "text/html; charset=utf-8";
          return res;
        },
        json(value) {
          out.body = stringify(value);
          out.type = "application/json";
          return res;
        },
      });
      g.req = request;
      g.res = res;
      lazy(g, "socket", () => make().socket);
      const { kv, getEnv } = make();
      g.db = freeze({
        get(key) {
          const value = call("kv_get", toString(key));
          return value === undefined ? undefined : parse(value);
        },
        set(key, value) {
          kv.set(key, value);
        },
        delete(key) {
          return kv.delete(key);
        },
      });
      const process = {};
      defineProperty(process, "env", { get: getEnv, enumerable: true });
      g.process = freeze(process);
    } else {
      g.request = request;
      g.respond = function respond(a, b, c) {
        if (state.response !== undefined) {
          call("log", "warn", "respond() was called again; the first response stands");
          return state.response;
        }
        let r;
        if (typeof a === "number") r = arguments.length === 1 ? { status: a } : { status: a, body: b, headers: c };
        else r = { status: 200, body: a, headers: b };
        state.response = r;
        return r;
      };
    }
    return state;
  }

  // The response as {status, headers, body, type?}: what `respond` recorded, else the
  // handler's value (`res` in the root style).
  function finish(state, value) {
    if (state.root) return state.out;
    if (state.response !== undefined) return state.response;
    if (value === undefined) return { status: 204 };
    if (value !== null && typeof value === "object" && !isArray(value) && ("status" in value || "body" in value)) {
      return { status: value.status === undefined ? 200 : value.status, body: value.body, headers: value.headers };
    }
    return { status: 200, body: value };
  }

  // After the answer: the request (its body may be a megabyte) is not kept alive by a warm
  // sandbox until the site's next request.
  function end() {
    const g = globalThis;
    g.request = g.req = g.res = g.respond = undefined;
  }

  return { begin, finish, end };
});
