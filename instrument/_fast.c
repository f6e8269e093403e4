/* instrument._fast: the C fast path of the hot path (see instrument/_record.py and
 * docs/design.md, "The C fast path").
 *
 * It does exactly what the pure-Python functions in _record.py and _timer.py do, in
 * the same order, on the same objects: a record is appended to this thread's list
 * ``series.tls.buf`` while its length is below SLOW_AT, and anything else (the first
 * record of a thread, the caps, drop counting, error tagging, validation of a call
 * site) is handed to the very Python functions the pure path calls (register,
 * overflow, record_error, resolve_call_site, _count_value, _finite_value). So the
 * collector cannot tell which path recorded, and the fork, exit and re-entrancy
 * guarantees are those of the buffer protocol in _buffers.py:
 *
 *   - no lock is taken and no Python code runs between reading the list and
 *     appending to it (a signal handler, __del__ or GC callback that records runs
 *     either before or after, and performs one more append);
 *   - the list is looked up in the series' threading.local on every record, so a
 *     forked child (whose lists _buffers.reset_after_fork unhooks) and a new thread
 *     register afresh, exactly as in Python; nothing is cached per thread here.
 *
 * Free-threaded CPython: the state below is written only by set_state() (atomically,
 * one word each) and read with relaxed atomic loads; lists, dicts and
 * threading.local carry their own locks; a Timer's stack of starts is guarded by a
 * critical section on the timer. So the module declares Py_MOD_GIL_NOT_USED.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#if defined(__GNUC__) || defined(__clang__)
#define LOAD_RELAXED(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE_RELAXED(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#else
#define LOAD_RELAXED(x) (x)
#define STORE_RELAXED(x, v) ((x) = (v))
#endif

#if defined(Py_GIL_DISABLED)
#define LOCK_OBJECT(o) Py_BEGIN_CRITICAL_SECTION(o)
#define UNLOCK_OBJECT() Py_END_CRITICAL_SECTION()
#else
#define LOCK_OBJECT(o) {
#define UNLOCK_OBJECT() }
#endif

/* --- state handed over by _record.setup() and _timer.setup() ------------------------ */

static int enabled = 1;                /* _record.ENABLED */
static Py_ssize_t slow_at = 65536;     /* _record.SLOW_AT */
static PyObject *record_globals;       /* _record's namespace: start_collector is read there */
static PyObject *register_fn, *overflow_fn, *record_error_fn, *resolve_fn;
static PyObject *count_value_fn, *finite_value_fn;
static PyObject *counters, *histograms, *gauges, *timers;   /* call-site caches */
static PyObject *kind_counter, *kind_histogram, *kind_gauge, *kind_timer;
static PyObject *unset;                /* _metrics.UNSET */
static PyTypeObject *timer_class;      /* _timer.Timer (a subclass of TimerCore) */

static PyObject *s_buf, *s_tls, *s_value, *s_changed, *s_start_collector, *s_items;
static PyObject *s_name, *s_tags, *s_unit, *s_qualname, *s_record, *s_gauge;
static PyObject *one;

static inline int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
ready(void)
{
    if (register_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "instrument._fast is used before instrument._record set it up");
        return 0;
    }
    return 1;
}

/* Append *value* to *buf*, this thread's list for a series, or hand both to overflow()
 * once the list has reached SLOW_AT. */
static int
append_to(PyObject *buf, PyObject *value)
{
    if (PyList_CheckExact(buf) && PyList_GET_SIZE(buf) < LOAD_RELAXED(slow_at)) {
        return PyList_Append(buf, value);
    }
    PyObject *r = PyObject_CallFunctionObjArgs(overflow_fn, buf, value, NULL);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* This thread's list for *series* (new reference), registered on its first record. */
static PyObject *
thread_list(PyObject *series, PyObject *tls)
{
    PyObject *buf = PyObject_GetAttr(tls, s_buf);
    if (buf == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        buf = PyObject_CallOneArg(register_fn, series);
    }
    return buf;
}

/* Append *value* to this thread's list for *series*: _record.append(), inlined. */
static int
store(PyObject *series, PyObject *tls, PyObject *value)
{
    PyObject *buf = thread_list(series, tls);
    if (buf == NULL) {
        return -1;
    }
    int rc = append_to(buf, value);
    Py_DECREF(buf);
    return rc;
}

static int
store_series(PyObject *series, PyObject *value)
{
    PyObject *tls = PyObject_GetAttr(series, s_tls);
    if (tls == NULL) {
        return -1;
    }
    int rc = store(series, tls, value);
    Py_DECREF(tls);
    return rc;
}

/* Call record_error(series, exc, value); `exc` is borrowed. NULL if that call raised. */
static PyObject *
call_record_error(PyObject *series, PyObject *exc, PyObject *value)
{
    return PyObject_CallFunctionObjArgs(record_error_fn, series, exc, value, NULL);
}

/* The wrapped call raised (an exception is set): record `value` tagged with the
 * error, then leave the same exception set, as `except BaseException: ...; raise`. */
static void
record_raised(PyObject *series, PyObject *value)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *r = value == NULL ? NULL : call_record_error(series, exc, value);
    if (r == NULL) {  /* a new exception (MemoryError, KeyboardInterrupt): chained, as in Python */
        PyObject *new_exc = PyErr_GetRaisedException();
        if (new_exc == NULL) {
            PyErr_SetRaisedException(exc);
            return;
        }
        PyException_SetContext(new_exc, exc);
        PyErr_SetRaisedException(new_exc);
        return;
    }
    Py_DECREF(r);
    PyErr_SetRaisedException(exc);
#else
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL && exc != NULL) {
        PyException_SetTraceback(exc, tb);
    }
    PyObject *r = (value == NULL || exc == NULL) ? NULL : call_record_error(series, exc, value);
    if (r == NULL) {
        if (PyErr_Occurred()) {
            PyObject *t2, *v2, *tb2;
            PyErr_Fetch(&t2, &v2, &tb2);
            PyErr_NormalizeException(&t2, &v2, &tb2);
            if (v2 != NULL && exc != NULL) {
                PyException_SetContext(v2, exc); /* steals exc */
                exc = NULL;
            }
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
            PyErr_Restore(t2, v2, tb2);
            return;
        }
    }
    Py_XDECREF(r);
    PyErr_Restore(type, exc, tb);
#endif
}

/* --- FunctionWrapper: @timed / @counted around a plain function ------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fn;
    PyObject *series;
    PyObject *tls;
    PyObject *dict;
    PyObject *weaklist;
} Wrapper;

static PyObject *
timed_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Wrapper *self = (Wrapper *)op;
    int64_t t = now_ns();
    PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    t = now_ns() - t;
    PyObject *value = PyLong_FromLongLong(t);
    if (result == NULL) {
        record_raised(self->series, value);
        Py_XDECREF(value);
        return NULL;
    }
    if (value == NULL || store(self->series, self->tls, value) < 0) {
        Py_XDECREF(value);
        Py_DECREF(result);
        return NULL;
    }
    Py_DECREF(value);
    return result;
}

static PyObject *
counted_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Wrapper *self = (Wrapper *)op;
    PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    if (result == NULL) {
        record_raised(self->series, one);
        return NULL;
    }
    if (store(self->series, self->tls, one) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
#define GC_BITS_DEFERRED 64  /* _PyGC_BITS_DEFERRED, Include/internal/pycore_gc.h of 3.13 */

/* 3.13t: give the new *wrapper* the reference counting CPython gives the function it wraps.
 * Every call of a function shared by threads adds to and takes from its reference count;
 * from two threads at once that is a contended atomic, and calls stop scaling. CPython
 * spares top-level functions this: it marks them for deferred reference counting
 * (_PyObject_SetDeferredRefcount), and 3.13 makes those immortal once a second thread
 * starts (gh-117783). A wrapper of such a function gets the same: immortal if the function
 * already is, else the same deferred marking, which CPython's own switch turns into
 * immortality with the function's. It then lives as long as the function it wraps: for
 * ever, as top-level functions do on 3.13t. A wrapper of a nested function is left alone.
 * Only called on the new object, before any other thread can see it. */
static void
refcount_like(PyObject *wrapper, PyObject *fn)
{
    if (_Py_IsImmortal(fn)) {
        PyObject_GC_UnTrack(wrapper);
        wrapper->ob_tid = _Py_UNOWNED_TID;
        wrapper->ob_ref_local = _Py_IMMORTAL_REFCNT_LOCAL;
        wrapper->ob_ref_shared = 0;
    }
    else if ((fn->ob_gc_bits & GC_BITS_DEFERRED) && wrapper->ob_ref_shared == 0) {
        wrapper->ob_gc_bits |= GC_BITS_DEFERRED;
        wrapper->ob_ref_local += 1;
        wrapper->ob_ref_shared = _Py_REF_QUEUED;
    }
}
#elif defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
/* 3.14t and later: deferred reference counting is real and public; the wrapper is still
 * freed by the garbage collector. */
static void
refcount_like(PyObject *wrapper, PyObject *fn)
{
    (void)fn;
    PyUnstable_Object_EnableDeferredRefcount(wrapper);
}
#else
static void
refcount_like(PyObject *wrapper, PyObject *fn)
{
    (void)wrapper;
    (void)fn;
}
#endif

static PyObject *
wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *fn, *series;
    int timed;
    static char *names[] = {"fn", "series", "timed", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOp:FunctionWrapper", names, &fn, &series, &timed)) {
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "cannot instrument %R: it is not callable", fn);
        return NULL;
    }
    PyObject *tls = PyObject_GetAttr(series, s_tls);
    if (tls == NULL) {
        return NULL;
    }
    Wrapper *self = (Wrapper *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(tls);
        return NULL;
    }
    self->vectorcall = timed ? timed_call : counted_call;
    self->fn = Py_NewRef(fn);
    self->series = Py_NewRef(series);
    self->tls = tls;
    refcount_like((PyObject *)self, fn);
    return (PyObject *)self;
}

static int
wrapper_traverse(Wrapper *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->fn);
    Py_VISIT(self->series);
    Py_VISIT(self->tls);
    Py_VISIT(self->dict);
    return 0;
}

static int
wrapper_clear(Wrapper *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->series);
    Py_CLEAR(self->tls);
    Py_CLEAR(self->dict);
    return 0;
}

static void
wrapper_dealloc(Wrapper *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weaklist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    PyTypeObject *type = Py_TYPE(self);
    wrapper_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* Bound like a function: through an instance, a method; through the class, itself. */
static PyObject *
wrapper_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
wrapper_repr(Wrapper *self)
{
    PyObject *name = PyObject_GetAttr((PyObject *)self, s_qualname);
    if (name == NULL) {
        PyErr_Clear();
        return PyUnicode_FromFormat("<instrumented function %R at %p>", self->fn, self);
    }
    PyObject *r = PyUnicode_FromFormat("<function %S at %p>", name, self);
    Py_DECREF(name);
    return r;
}

/* Pickled by reference, as functions are: pickle looks the qualified name up. */
static PyObject *
wrapper_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttr(self, s_qualname);
}

static PyMethodDef wrapper_methods[] = {
    {"__reduce__", wrapper_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef wrapper_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Wrapper, vectorcall), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(Wrapper, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Wrapper, weaklist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef wrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot wrapper_slots[] = {
    {Py_tp_doc, "A function recorded by @timed or @counted (the C fast path's wrapper)."},
    {Py_tp_new, wrapper_new},
    {Py_tp_dealloc, wrapper_dealloc},
    {Py_tp_traverse, wrapper_traverse},
    {Py_tp_clear, wrapper_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, wrapper_descr_get},
    {Py_tp_repr, wrapper_repr},
    {Py_tp_methods, wrapper_methods},
    {Py_tp_members, wrapper_members},
    {Py_tp_getset, wrapper_getset},
    {0, NULL},
};

static PyType_Spec wrapper_spec = {
    .name = "instrument._fast.FunctionWrapper",
    .basicsize = sizeof(Wrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .slots = wrapper_slots,
};

/* --- TimerCore: Timer's __enter__ / __exit__ --------------------------------------- */

#define INLINE_STARTS 4

typedef struct {
    PyObject_HEAD
    PyObject *series;
    PyObject *tls;
    int64_t *starts;                     /* a stack: nested and concurrent uses */
    Py_ssize_t depth;
    Py_ssize_t capacity;
    int64_t inline_starts[INLINE_STARTS];
} TimerCore;

static int
timer_set_series(TimerCore *self, PyObject *series)
{
    PyObject *tls = PyObject_GetAttr(series, s_tls);
    if (tls == NULL) {
        return -1;
    }
    Py_XSETREF(self->series, Py_NewRef(series));
    Py_XSETREF(self->tls, tls);
    return 0;
}

static PyObject *
timer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    TimerCore *self = (TimerCore *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->starts = self->inline_starts;
        self->capacity = INLINE_STARTS;
    }
    return (PyObject *)self;
}

static int
timer_init(TimerCore *self, PyObject *args, PyObject *kwargs)
{
    PyObject *series;
    static char *names[] = {"series", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Timer", names, &series)) {
        return -1;
    }
    return timer_set_series(self, series);
}

static int
timer_traverse(TimerCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->series);
    Py_VISIT(self->tls);
    return 0;
}

static int
timer_clear(TimerCore *self)
{
    Py_CLEAR(self->series);
    Py_CLEAR(self->tls);
    return 0;
}

static void
timer_dealloc(TimerCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    timer_clear(self);
    if (self->starts != self->inline_starts) {
        PyMem_Free(self->starts);
    }
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
timer_enter(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    TimerCore *self = (TimerCore *)op;
    int failed = 0;
    int64_t t = now_ns();
    LOCK_OBJECT(op);
    if (self->depth == self->capacity) {
        Py_ssize_t capacity = self->capacity * 2;
        int64_t *grown = PyMem_Malloc(sizeof(int64_t) * (size_t)capacity);
        if (grown == NULL) {
            failed = 1;
        }
        else {
            memcpy(grown, self->starts, sizeof(int64_t) * (size_t)self->depth);
            if (self->starts != self->inline_starts) {
                PyMem_Free(self->starts);
            }
            self->starts = grown;
            self->capacity = capacity;
        }
    }
    if (!failed) {
        self->starts[self->depth++] = t;
    }
    UNLOCK_OBJECT();
    if (failed) {
        return PyErr_NoMemory();
    }
    return Py_NewRef(op);
}

static PyObject *
timer_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TimerCore *self = (TimerCore *)op;
    int64_t end = now_ns(), start = 0;
    int had = 0;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "__exit__ expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    LOCK_OBJECT(op);
    if (self->depth > 0) {
        start = self->starts[--self->depth];
        had = 1;
    }
    UNLOCK_OBJECT();
    if (!had || !LOAD_RELAXED(enabled) || self->series == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *value = PyLong_FromLongLong(end - start);
    if (value == NULL) {
        return NULL;
    }
    PyObject *exc = args[1];
    int normal = exc == Py_None;
    if (!normal) {
        normal = PyObject_IsInstance(exc, PyExc_GeneratorExit);
        if (normal < 0) {
            Py_DECREF(value);
            return NULL;
        }
    }
    if (normal) {
        int rc = store(self->series, self->tls, value);
        Py_DECREF(value);
        if (rc < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *r = call_record_error(self->series, exc, value);
    Py_DECREF(value);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyMethodDef timer_methods[] = {
    {"__enter__", timer_enter, METH_NOARGS, "Start timing (starts are kept on a stack)."},
    {"__exit__", (PyCFunction)(void (*)(void))timer_exit, METH_FASTCALL,
     "Record the time since the matching start, tagged error=<class> if the block raised."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef timer_members[] = {
    {"_series", T_OBJECT, offsetof(TimerCore, series), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "Timer's recording core (the C fast path's __enter__ and __exit__)."},
    {Py_tp_new, timer_new},
    {Py_tp_init, timer_init},
    {Py_tp_dealloc, timer_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_methods, timer_methods},
    {Py_tp_members, timer_members},
    {0, NULL},
};

static PyType_Spec timer_spec = {
    .name = "instrument._fast.TimerCore",
    .basicsize = sizeof(TimerCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = timer_slots,
};

/* --- count(), record(), gauge(), timer(), append() --------------------------------- */

/* Arguments (name, value, tags, *, unit) by position or keyword, as the Python signature. */
static int
parse(const char *function, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int value_default,
      PyObject **name, PyObject **value, PyObject **tags, PyObject **unit)
{
    PyObject *slots[4] = {NULL, NULL, NULL, NULL};
    PyObject *keys[4] = {s_name, s_value, s_tags, s_unit};
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes from %d to 3 positional arguments but %zd were given", function,
                     value_default ? 1 : 2, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        slots[i] = args[i];
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int found = -1;
            for (int j = 0; j < 4 && found < 0; j++) {
                if (key == keys[j]) {
                    found = j;
                }
            }
            for (int j = 0; j < 4 && found < 0; j++) {
                int eq = PyUnicode_Compare(key, keys[j]) == 0;
                if (eq) {
                    found = j;
                }
            }
            if (PyErr_Occurred()) {
                return -1;
            }
            if (found < 0) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", function, key);
                return -1;
            }
            if (slots[found] != NULL) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%S'", function, key);
                return -1;
            }
            slots[found] = args[nargs + k];
        }
    }
    if (slots[0] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'name'", function);
        return -1;
    }
    if (slots[1] == NULL) {
        if (!value_default) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument 'value'", function);
            return -1;
        }
        slots[1] = one;
    }
    *name = slots[0];
    *value = slots[1];
    *tags = slots[2] == NULL ? Py_None : slots[2];
    *unit = slots[3] == NULL ? Py_None : slots[3];
    return 0;
}

/* ``name if tags is None else (name, *tags.items())``, then ``(key, unit)`` if a unit is given. */
static PyObject *
call_site_key(PyObject *name, PyObject *tags, PyObject *unit)
{
    PyObject *key;
    if (tags == Py_None) {
        key = Py_NewRef(name);
    }
    else if (PyDict_CheckExact(tags)) {
        key = NULL;
        LOCK_OBJECT(tags);
        Py_ssize_t n = PyDict_GET_SIZE(tags), pos = 0, i = 1;
        PyObject *k, *v;
        key = PyTuple_New(n + 1);
        if (key != NULL) {
            PyTuple_SET_ITEM(key, 0, Py_NewRef(name));
            while (i <= n && PyDict_Next(tags, &pos, &k, &v)) {
                PyObject *item = PyTuple_Pack(2, k, v);
                if (item == NULL) {
                    Py_CLEAR(key);
                    break;
                }
                PyTuple_SET_ITEM(key, i++, item);
            }
            if (key != NULL && i != n + 1) {  /* cannot happen: the dict is locked or the GIL held */
                Py_CLEAR(key);
                PyErr_SetString(PyExc_RuntimeError, "tags changed size during a record");
            }
        }
        UNLOCK_OBJECT();
        if (key == NULL) {
            return NULL;
        }
    }
    else {
        PyObject *items = PyObject_CallMethodNoArgs(tags, s_items);
        if (items == NULL) {
            return NULL;
        }
        PyObject *seq = PySequence_List(items);
        Py_DECREF(items);
        if (seq == NULL) {
            return NULL;
        }
        if (PyList_Insert(seq, 0, name) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        key = PyList_AsTuple(seq);
        Py_DECREF(seq);
        if (key == NULL) {
            return NULL;
        }
    }
    if (unit != Py_None) {
        Py_SETREF(key, PyTuple_Pack(2, key, unit));
    }
    return key;
}

/* dict[key] as a new reference; NULL if missing (no exception) or on error (exception set).
 * A strong reference on 3.13+, where a borrowed one is unsafe on free-threaded builds. */
static PyObject *
dict_get(PyObject *dict, PyObject *key)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *value;
    return PyDict_GetItemRef(dict, key, &value) < 0 ? NULL : value;
#else
    return Py_XNewRef(PyDict_GetItemWithError(dict, key));
#endif
}

/* The series of a call site, through the Python cache (new reference; *key_out gets the
 * key built, or NULL when the lookup fell back to resolve_call_site). */
static PyObject *
call_site_slow(PyObject *cache, PyObject *kind, PyObject *name, PyObject *tags, PyObject *unit, PyObject **key_out)
{
    PyObject *key = call_site_key(name, tags, unit);
    PyObject *series = NULL;
    *key_out = NULL;
    if (key != NULL) {
        series = dict_get(cache, key);
        if (series != NULL) {
            *key_out = key;
            return series;
        }
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_AttributeError) &&
            !PyErr_ExceptionMatches(PyExc_KeyError)) {
            Py_XDECREF(key);
            return NULL;
        }
        PyErr_Clear();
    }
    PyObject *call[5] = {cache, kind, name, tags, unit};
    series = PyObject_Vectorcall(resolve_fn, call, 5, NULL);
    if (series == NULL) {
        Py_XDECREF(key);
        return NULL;
    }
    *key_out = key;  /* validated now: the same key finds the same series from here on */
    return series;
}

#ifndef Py_GIL_DISABLED
/* The memo: a small direct-mapped table in front of each Python call-site cache, so that a
 * call site seen before is found without building its key tuple (two allocations, a tuple
 * hash and a tuple comparison per call). It only holds keys of exact str names and exact
 * str/int/float/bool tag values in a dict, compares them without running Python code, and
 * is stricter than the dict (1 and 1.0 are different entries here), so a hit always names
 * the series the dict would. A miss takes the dict path, which is the reference. With the
 * GIL only: nothing else runs between the check and the use of an entry. */
#define USE_MEMO 1
#define MEMO_SIZE 256

typedef struct {
    Py_hash_t hash;
    PyObject *key;     /* the key tuple built for the dict (a str when there are no tags) */
    PyObject *series;
    PyObject *tls;
    PyObject *spare;   /* timer(): a Timer of this series that nothing else holds, to reuse */
} MemoEntry;

typedef struct {
    MemoEntry entries[MEMO_SIZE];
} Memo;

static Memo memo_counters, memo_histograms, memo_gauges, memo_timers;

static int
same(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    PyTypeObject *type = Py_TYPE(a);
    if (type != Py_TYPE(b)) {
        return 0;
    }
    if (type == &PyUnicode_Type) {
        return PyUnicode_Compare(a, b) == 0;
    }
    if (type == &PyLong_Type || type == &PyFloat_Type) {
        return PyObject_RichCompareBool(a, b, Py_EQ) == 1;
    }
    return 0;
}

/* 1 and the hash for a memoizable call site, else 0 (no exception set either way). */
static int
memo_hash(PyObject *name, PyObject *tags, Py_hash_t *out)
{
    if (!PyUnicode_CheckExact(name)) {
        return 0;
    }
    Py_uhash_t h = (Py_uhash_t)PyObject_Hash(name);
    if (tags != Py_None) {
        if (!PyDict_CheckExact(tags)) {
            return 0;
        }
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(tags, &pos, &k, &v)) {
            PyTypeObject *vt = Py_TYPE(v);
            if (!PyUnicode_CheckExact(k) ||
                (vt != &PyUnicode_Type && vt != &PyLong_Type && vt != &PyFloat_Type && vt != &PyBool_Type)) {
                return 0;
            }
            Py_hash_t hv = PyObject_Hash(v);
            if (hv == -1) {
                PyErr_Clear();
                return 0;
            }
            h = (h ^ (Py_uhash_t)PyObject_Hash(k)) * 1000003U;
            h = (h ^ (Py_uhash_t)hv) * 1000003U;
        }
        h ^= (Py_uhash_t)PyDict_GET_SIZE(tags) + 0x9e3779b9U;
    }
    *out = (Py_hash_t)h;
    return 1;
}

static int
memo_matches(MemoEntry *entry, PyObject *name, PyObject *tags)
{
    PyObject *key = entry->key;
    if (tags == Py_None) {
        return same(key, name);
    }
    Py_ssize_t n = PyDict_GET_SIZE(tags);
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != n + 1 || !same(PyTuple_GET_ITEM(key, 0), name)) {
        return 0;
    }
    Py_ssize_t pos = 0, i = 1;
    PyObject *k, *v;
    while (PyDict_Next(tags, &pos, &k, &v)) {
        PyObject *item = PyTuple_GET_ITEM(key, i++);
        if (!same(PyTuple_GET_ITEM(item, 0), k) || !same(PyTuple_GET_ITEM(item, 1), v)) {
            return 0;
        }
    }
    return 1;
}

static void
memo_forget(MemoEntry *entry)
{
    PyObject *key = entry->key, *series = entry->series, *tls = entry->tls, *spare = entry->spare;
    entry->key = entry->series = entry->tls = entry->spare = NULL;
    Py_XDECREF(key);
    Py_XDECREF(series);
    Py_XDECREF(tls);
    Py_XDECREF(spare);
}
#endif

#ifdef Py_GIL_DISABLED
/* The thread memo, on free-threaded builds instead of the memo above: each thread's own
 * {call-site key: its list for that call site's series}, one dict for count() and one for
 * record(), kept in the thread's PyThreadState_GetDict(). A call site seen before by this
 * thread then touches only objects this thread made (the key it built, its dicts, its list):
 * no reference count, lock or cache line is shared with another thread recording at the
 * same call site, where the shared cache would take a reference to the series and its
 * threading.local on every call. The keys are those of the shared cache (the same dict
 * semantics), and an entry is added only once that cache has validated its key. The list
 * of a (thread, series) pair is never replaced while its thread lives (_buffers), except in
 * a forked child, where _buffers.reset_after_fork() unhooks the forking thread's lists:
 * forget_memo(), called right after it (_record.lists_unhooked), moves memo_generation on,
 * and a memo of an older generation is emptied before use. */
#define USE_THREAD_MEMO 1
#define THREAD_MEMO_LIMIT 4096         /* call sites remembered per thread and function */

typedef struct {
    PyObject_HEAD
    uint64_t generation;
    PyObject *sites[2];                /* count()'s and record()'s */
} ThreadMemo;

enum { SITES_COUNT = 0, SITES_RECORD = 1 };

static uint64_t memo_generation = 1;
static PyObject *s_thread_memo;        /* the key in each thread's state dict */
static PyTypeObject *thread_memo_type;

static void
thread_memo_dealloc(ThreadMemo *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(self->sites[0]);
    Py_CLEAR(self->sites[1]);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyType_Slot thread_memo_slots[] = {
    {Py_tp_dealloc, (destructor)thread_memo_dealloc},
    {Py_tp_doc, "One thread's memo of call sites (see instrument/_fast.c)."},
    {0, NULL},
};

static PyType_Spec thread_memo_spec = {
    .name = "instrument._fast.ThreadMemo",
    .basicsize = sizeof(ThreadMemo),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = thread_memo_slots,
};

static void
move_generation(void)
{
    __atomic_fetch_add(&memo_generation, 1, __ATOMIC_RELAXED);
}

/* This thread's sites dict for *which* (borrowed: the thread's state dict holds it), of
 * the current generation; NULL, with no exception set, when there is none to be had. */
static PyObject *
thread_sites(int which)
{
    PyObject *state = PyThreadState_GetDict();
    if (state == NULL) {
        return NULL;
    }
    uint64_t generation = LOAD_RELAXED(memo_generation);
    PyObject *found = dict_get(state, s_thread_memo);
    ThreadMemo *memo = (ThreadMemo *)found;
    if (memo == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
        memo = PyObject_New(ThreadMemo, thread_memo_type);
        if (memo == NULL) {
            PyErr_Clear();
            return NULL;
        }
        memo->sites[0] = PyDict_New();
        memo->sites[1] = PyDict_New();
        memo->generation = generation;
        if (memo->sites[0] == NULL || memo->sites[1] == NULL ||
            PyDict_SetItem(state, s_thread_memo, (PyObject *)memo) < 0) {
            PyErr_Clear();
            Py_DECREF(memo);
            return NULL;
        }
    }
    else if (memo->generation != generation) {
        PyDict_Clear(memo->sites[0]);
        PyDict_Clear(memo->sites[1]);
        memo->generation = generation;
    }
    PyObject *sites = memo->sites[which];
    Py_DECREF(memo);  /* the state dict keeps it, and it keeps its dicts */
    return sites;
}

#endif

#ifdef USE_MEMO
#define MEMO(cache) ((void *)&memo_##cache)
#else
#define MEMO(cache) NULL
#endif

/* The series of a count()/record()/gauge()/timer() call site and its threading.local (new
 * references); *entry_out gets its memo entry, if it has one. */
static PyObject *
call_site(void *memo, PyObject *cache, PyObject *kind, PyObject *name, PyObject *tags, PyObject *unit,
          PyObject **tls_out, void **entry_out)
{
    *tls_out = NULL;
    *entry_out = NULL;
#ifdef USE_MEMO
    Py_hash_t hash = 0;
    MemoEntry *entry = NULL;
    if (unit == Py_None && memo_hash(name, tags, &hash)) {
        entry = &((Memo *)memo)->entries[(size_t)hash & (MEMO_SIZE - 1)];
        if (entry->key != NULL && entry->hash == hash && memo_matches(entry, name, tags)) {
            *tls_out = Py_NewRef(entry->tls);
            *entry_out = entry;
            return Py_NewRef(entry->series);
        }
    }
#endif
    PyObject *key;
    PyObject *series = call_site_slow(cache, kind, name, tags, unit, &key);
    if (series == NULL) {
        return NULL;
    }
    PyObject *tls = PyObject_GetAttr(series, s_tls);
    if (tls == NULL) {
        Py_XDECREF(key);
        Py_DECREF(series);
        return NULL;
    }
#ifdef USE_MEMO
    if (entry != NULL && key != NULL) {
        memo_forget(entry);
        entry->hash = hash;
        entry->key = Py_NewRef(key);
        entry->series = Py_NewRef(series);
        entry->tls = Py_NewRef(tls);
        *entry_out = entry;
    }
#endif
    Py_XDECREF(key);
    *tls_out = tls;
    return series;
}

/* Ints within 64 bits and finite floats pass as they are; the rest goes to the Python
 * check, which normalises them or raises (as the pure path does). */
static PyObject *
checked_value(PyObject *value, int counter, PyObject *function, PyObject *name)
{
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && (!counter || v >= 0)) {
            return Py_NewRef(value);
        }
        if (v == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    else if (PyFloat_CheckExact(value)) {
        double v = PyFloat_AS_DOUBLE(value);
        if (isfinite(v) && (!counter || v >= 0.0)) {
            return Py_NewRef(value);
        }
    }
    if (counter) {
        return PyObject_CallFunctionObjArgs(count_value_fn, name, value, NULL);
    }
    return PyObject_CallFunctionObjArgs(finite_value_fn, function, name, value, NULL);
}

#ifdef USE_THREAD_MEMO
/* count()/record() through this thread's memo, *key* being the call site's: 1 when recorded
 * (or failed: -1, exception set), 0 when the call site is not in the memo (no exception set). */
static int
record_memoized(PyObject *sites, PyObject *key, int counter, PyObject *function, PyObject *name, PyObject *value)
{
    PyObject *buf = dict_get(sites, key);
    if (buf == NULL) {
        PyErr_Clear();  /* a key the shared cache would refuse too: it says why */
        return 0;
    }
    PyObject *checked = checked_value(value, counter, function, name);
    int rc = checked == NULL ? -1 : append_to(buf, checked);
    Py_XDECREF(checked);
    Py_DECREF(buf);
    return rc < 0 ? -1 : 1;
}

/* Remember this thread's list for the call site *key* in its memo, once the shared cache
 * knows the key (and while the memo has room). */
static void
memoize(PyObject *sites, PyObject *cache, PyObject *key, PyObject *tls)
{
    if (PyDict_GET_SIZE(sites) >= THREAD_MEMO_LIMIT) {
        return;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *known = dict_get(cache, key);
    PyObject *buf = known == NULL ? NULL : PyObject_GetAttr(tls, s_buf);
    if (buf != NULL) {
        PyDict_SetItem(sites, key, buf);
    }
    Py_XDECREF(buf);
    Py_XDECREF(known);
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
}
#endif

static PyObject *
record_into(void *memo, PyObject *cache, PyObject *kind, int counter, PyObject *function, const char *fname,
            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *name, *value, *tags, *unit;
    if (parse(fname, args, nargs, kwnames, counter, &name, &value, &tags, &unit) < 0) {
        return NULL;
    }
    if (!LOAD_RELAXED(enabled)) {
        Py_RETURN_NONE;
    }
    if (!ready()) {
        return NULL;
    }
#ifdef USE_THREAD_MEMO
    PyObject *sites = thread_sites(counter ? SITES_COUNT : SITES_RECORD);
    PyObject *key = sites == NULL ? NULL : call_site_key(name, tags, unit);
    if (key == NULL) {
        PyErr_Clear();  /* the shared path below says what is wrong with the call site */
    }
    else {
        int done = record_memoized(sites, key, counter, function, name, value);
        if (done) {
            Py_DECREF(key);
            if (done < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
#endif
    PyObject *tls;
    void *entry;
    PyObject *series = call_site(memo, cache, kind, name, tags, unit, &tls, &entry);
    int rc = -1;
    if (series != NULL) {
        PyObject *checked = checked_value(value, counter, function, name);
        rc = checked == NULL ? -1 : store(series, tls, checked);
        Py_XDECREF(checked);
#ifdef USE_THREAD_MEMO
        if (rc == 0 && key != NULL) {
            memoize(sites, cache, key, tls);
        }
#endif
        Py_DECREF(tls);
        Py_DECREF(series);
    }
#ifdef USE_THREAD_MEMO
    Py_XDECREF(key);
#endif
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
fast_count(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return record_into(MEMO(counters), counters, kind_counter, 1, NULL, "count", args, PyVectorcall_NARGS(nargsf), kwnames);
}

static PyObject *
fast_record(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return record_into(MEMO(histograms), histograms, kind_histogram, 0, s_record, "record", args, PyVectorcall_NARGS(nargsf),
                       kwnames);
}

static PyObject *
fast_gauge(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *name, *value, *tags, *unit;
    if (parse("gauge", args, PyVectorcall_NARGS(nargsf), kwnames, 0, &name, &value, &tags, &unit) < 0) {
        return NULL;
    }
    if (!LOAD_RELAXED(enabled)) {
        Py_RETURN_NONE;
    }
    if (!ready()) {
        return NULL;
    }
    PyObject *tls;
    void *entry;
    PyObject *series = call_site(MEMO(gauges), gauges, kind_gauge, name, tags, unit, &tls, &entry);
    if (series == NULL) {
        return NULL;
    }
    Py_DECREF(tls);
    PyObject *checked = checked_value(value, 0, s_gauge, name);
    if (checked == NULL) {
        Py_DECREF(series);
        return NULL;
    }
    int rc = 0;
    PyObject *current = PyObject_GetAttr(series, s_value);
    if (current == NULL) {
        rc = -1;
    }
    else if (current == unset) {  /* this series' first value: the pipeline may have to start */
        PyObject *start = dict_get(record_globals, s_start_collector);
        if (start == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_RuntimeError, "instrument._record.start_collector is missing");
            }
            rc = -1;
        }
        else {
            PyObject *r = PyObject_CallNoArgs(start);
            Py_DECREF(start);
            rc = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        }
    }
    Py_XDECREF(current);
    /* Value first, flag second: the collector clears the flag before it reads the value. */
    if (rc == 0) {
        rc = PyObject_SetAttr(series, s_value, checked);
    }
    if (rc == 0) {
        rc = PyObject_SetAttr(series, s_changed, Py_True);
    }
    Py_DECREF(checked);
    Py_DECREF(series);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
fast_timer(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *name = NULL, *tags = NULL;
    static const char *const names[] = {"name", "tags"};
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "timer() takes from 1 to 2 positional arguments but %zd were given", nargs);
        return NULL;
    }
    if (nargs > 0) {
        name = args[0];
    }
    if (nargs > 1) {
        tags = args[1];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            PyObject **slot = NULL;
            if (key == s_tags) {
                slot = &tags;
            }
            else if (key == s_name || PyUnicode_CompareWithASCIIString(key, names[0]) == 0) {
                slot = &name;
            }
            else if (PyUnicode_CompareWithASCIIString(key, names[1]) == 0) {
                slot = &tags;
            }
            if (slot == NULL) {
                PyErr_Format(PyExc_TypeError, "timer() got an unexpected keyword argument '%S'", key);
                return NULL;
            }
            if (*slot != NULL) {
                PyErr_Format(PyExc_TypeError, "timer() got multiple values for argument '%S'", key);
                return NULL;
            }
            *slot = args[nargs + k];
        }
    }
    if (name == NULL) {
        PyErr_SetString(PyExc_TypeError, "timer() missing required argument 'name'");
        return NULL;
    }
    if (tags == NULL) {
        tags = Py_None;
    }
    if (timer_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "instrument._fast.timer is used before instrument._timer set it up");
        return NULL;
    }
    PyObject *tls;
    void *found;
    PyObject *series = call_site(MEMO(timers), timers, kind_timer, name, tags, Py_None, &tls, &found);
    if (series == NULL) {
        return NULL;
    }
#ifdef USE_MEMO
    /* A Timer that only the memo holds, and that is not entered, is as good as a new one:
     * reuse it (with the GIL, nothing can take a reference between this check and the return). */
    MemoEntry *entry = found;
    if (entry != NULL && entry->spare != NULL && Py_REFCNT(entry->spare) == 1 &&
        ((TimerCore *)entry->spare)->depth == 0 && Py_TYPE(entry->spare) == timer_class) {
        Py_DECREF(tls);
        Py_DECREF(series);
        return Py_NewRef(entry->spare);
    }
#endif
    TimerCore *timer = (TimerCore *)timer_new(timer_class, NULL, NULL);
    if (timer == NULL) {
        Py_DECREF(tls);
        Py_DECREF(series);
        return NULL;
    }
    timer->series = series;  /* both references move to the timer */
    timer->tls = tls;
#ifdef USE_MEMO
    /* The allocation may have run a garbage collection, and so Python code: keep the timer
     * only if the entry still belongs to this series. */
    if (entry != NULL && entry->series == series) {
        Py_XSETREF(entry->spare, Py_NewRef((PyObject *)timer));
    }
#endif
    return (PyObject *)timer;
}

static PyObject *
fast_append(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "append() takes 2 positional arguments but %zd were given", nargs);
        return NULL;
    }
    if (!ready() || store_series(args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- set-up ------------------------------------------------------------------------- */

static int
take(PyObject *namespace, const char *key, PyObject **target)
{
    PyObject *value = PyDict_GetItemString(namespace, key);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "instrument._fast.setup: %s is missing", key);
        return -1;
    }
    Py_XSETREF(*target, Py_NewRef(value));
    return 0;
}

static PyObject *
fast_setup(PyObject *module, PyObject *namespace)
{
    if (!PyDict_Check(namespace)) {
        PyErr_SetString(PyExc_TypeError, "setup() takes _record's globals()");
        return NULL;
    }
    if (take(namespace, "register", &register_fn) < 0 || take(namespace, "overflow", &overflow_fn) < 0 ||
        take(namespace, "record_error", &record_error_fn) < 0 ||
        take(namespace, "resolve_call_site", &resolve_fn) < 0 ||
        take(namespace, "_count_value", &count_value_fn) < 0 ||
        take(namespace, "_finite_value", &finite_value_fn) < 0 || take(namespace, "_counters", &counters) < 0 ||
        take(namespace, "_histograms", &histograms) < 0 || take(namespace, "_gauges", &gauges) < 0 ||
        take(namespace, "COUNTER", &kind_counter) < 0 || take(namespace, "HISTOGRAM", &kind_histogram) < 0 ||
        take(namespace, "GAUGE", &kind_gauge) < 0 || take(namespace, "UNSET", &unset) < 0) {
        return NULL;
    }
    Py_XSETREF(record_globals, Py_NewRef(namespace));
    Py_RETURN_NONE;
}

static PyObject *
fast_setup_timer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "setup_timer(cache, kind, timer_class)");
        return NULL;
    }
    PyObject *core = PyObject_GetAttrString(module, "TimerCore");
    if (core == NULL) {
        return NULL;
    }
    int sub = PyType_IsSubtype((PyTypeObject *)args[2], (PyTypeObject *)core);
    Py_DECREF(core);
    if (!sub) {
        PyErr_SetString(PyExc_TypeError, "setup_timer: the timer class must subclass TimerCore");
        return NULL;
    }
    Py_XSETREF(timers, Py_NewRef(args[0]));
    Py_XSETREF(kind_timer, Py_NewRef(args[1]));
    Py_XSETREF(timer_class, (PyTypeObject *)Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

static PyObject *
fast_set_state(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_state(enabled, slow_at)");
        return NULL;
    }
    int on = PyObject_IsTrue(args[0]);
    if (on < 0) {
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    if (at == -1 && PyErr_Occurred()) {
        return NULL;
    }
    STORE_RELAXED(enabled, on);
    STORE_RELAXED(slow_at, at);
    Py_RETURN_NONE;
}

static PyObject *
fast_forget_memo(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#ifdef USE_THREAD_MEMO
    move_generation();
#endif
    Py_RETURN_NONE;
}

static PyObject *
fast_state(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(On)", LOAD_RELAXED(enabled) ? Py_True : Py_False, LOAD_RELAXED(slow_at));
}

static PyMethodDef fast_functions[] = {
    {"count", (PyCFunction)(void (*)(void))fast_count, METH_FASTCALL | METH_KEYWORDS,
     "count($module, /, name, value=1, tags=None, *, unit=None)\n--\n\n"
     "Add *value* (default 1, never negative) to the counter *name*."},
    {"record", (PyCFunction)(void (*)(void))fast_record, METH_FASTCALL | METH_KEYWORDS,
     "record($module, /, name, value, tags=None, *, unit=None)\n--\n\n"
     "Add *value* to the distribution *name* (a histogram: count, sum, quantiles)."},
    {"gauge", (PyCFunction)(void (*)(void))fast_gauge, METH_FASTCALL | METH_KEYWORDS,
     "gauge($module, /, name, value, tags=None, *, unit=None)\n--\n\n"
     "Set the gauge *name* to *value*; the last value set is exported each interval."},
    {"timer", (PyCFunction)(void (*)(void))fast_timer, METH_FASTCALL | METH_KEYWORDS,
     "timer($module, /, name, tags=None)\n--\n\n"
     "A timer for *name*: ``with timer(...)``, ``async with timer(...)`` or ``@timer(...)``."},
    {"append", (PyCFunction)(void (*)(void))fast_append, METH_FASTCALL,
     "append($module, series, value, /)\n--\n\n"
     "Record *value* into *series* from the calling thread (the non-inlined form)."},
    {"setup", fast_setup, METH_O, "Take the hot path's collaborators from _record's namespace."},
    {"setup_timer", (PyCFunction)(void (*)(void))fast_setup_timer, METH_FASTCALL,
     "Take timer()'s call-site cache, kind and Timer class."},
    {"set_state", (PyCFunction)(void (*)(void))fast_set_state, METH_FASTCALL,
     "Set the kill switch and SLOW_AT (called by _record.set_state only)."},
    {"state", fast_state, METH_NOARGS, "(enabled, slow_at) as the C path reads them."},
    {"forget_memo", fast_forget_memo, METH_NOARGS,
     "Empty every thread's memo of call sites before its next use (after _buffers unhooked lists)."},
    {NULL, NULL, 0, NULL},
};

static int
intern(PyObject **target, const char *text)
{
    *target = PyUnicode_InternFromString(text);
    return *target == NULL ? -1 : 0;
}

static int
fast_exec(PyObject *module)
{
    if (intern(&s_buf, "buf") < 0 || intern(&s_tls, "tls") < 0 || intern(&s_value, "value") < 0 ||
        intern(&s_changed, "changed") < 0 || intern(&s_start_collector, "start_collector") < 0 ||
        intern(&s_items, "items") < 0 || intern(&s_name, "name") < 0 || intern(&s_tags, "tags") < 0 ||
        intern(&s_unit, "unit") < 0 || intern(&s_qualname, "__qualname__") < 0 ||
        intern(&s_record, "record") < 0 || intern(&s_gauge, "gauge") < 0) {
        return -1;
    }
    one = PyLong_FromLong(1);
    if (one == NULL) {
        return -1;
    }
    PyObject *wrapper_type = PyType_FromSpec(&wrapper_spec);
    if (wrapper_type == NULL || PyModule_AddObject(module, "FunctionWrapper", wrapper_type) < 0) {
        Py_XDECREF(wrapper_type);
        return -1;
    }
    PyObject *timer_type = PyType_FromSpec(&timer_spec);
    if (timer_type == NULL || PyModule_AddObject(module, "TimerCore", timer_type) < 0) {
        Py_XDECREF(timer_type);
        return -1;
    }
#ifdef Py_GIL_DISABLED
    if (PyModule_AddIntConstant(module, "FREE_THREADED", 1) < 0) {
        return -1;
    }
    if (intern(&s_thread_memo, "instrument._fast.memo") < 0) {
        return -1;
    }
    thread_memo_type = (PyTypeObject *)PyType_FromSpec(&thread_memo_spec);
    if (thread_memo_type == NULL) {
        return -1;
    }
#else
    if (PyModule_AddIntConstant(module, "FREE_THREADED", 0) < 0) {
        return -1;
    }
#endif
    return 0;
}

static PyModuleDef_Slot fast_module_slots[] = {
    {Py_mod_exec, fast_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* One set of C globals per process: a second interpreter gets an ImportError, and
     * instrument then runs its pure-Python path there. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "instrument._fast",
    .m_doc = "The hot path in C: @timed/@counted wrappers, Timer's __enter__/__exit__, count(), "
             "record(), gauge(), timer().",
    .m_size = 0,
    .m_methods = fast_functions,
    .m_slots = fast_module_slots,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    return PyModuleDef_Init(&fast_module);
}
