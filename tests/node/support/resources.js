'use strict';

// Everything a test or suite starts, closed in reverse order by closeAll().
class Resources {
  constructor() {
    this.closers = [];
  }

  add(close) {
    let done = null;
    const once = () => {
      if (!done) done = Promise.resolve().then(close);
      return done;
    };
    this.closers.push(once);
    return once;
  }

  async closeAll() {
    const errors = [];
    while (this.closers.length) {
      try {
        await this.closers.pop()();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw errors[0];
  }
}

module.exports = { Resources };
