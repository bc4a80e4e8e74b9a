//! Cranelift backend: a tape becomes one native function
//! `extern "C" fn(t, y, p, out, host)`.
//!
//! Each tape slot becomes one SSA value. Arithmetic, comparisons, logic,
//! select, sqrt, floor, ceil and trunc are native instructions (IEEE-exact,
//! so bit-identical to the interpreter); every other operator is a call to
//! the same Rust function the interpreter runs (see `ops`), registered as a
//! JIT symbol. `delay` calls a trampoline that calls the caller's
//! [`DelayHost`].

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Signature, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use vht_ir::{BinOp, UnOp};

use crate::tape::{Instr, Tape};
use crate::{ops, CodegenError, DelayHost, JitStage};

/// What the native code receives as its `host` argument: the caller's delay
/// host, and room to carry a panic out of the trampoline (unwinding through
/// JIT frames is not possible, so it is caught there and resumed after the
/// native function has returned).
#[repr(C)]
pub(crate) struct HostCtx<'a> {
    /// Chunked functions pass values between chunks through this array.
    scratch: *mut f64,
    host: &'a dyn DelayHost,
    panic: Cell<Option<Box<dyn Any + Send>>>,
}

type NativeFn = unsafe extern "C" fn(f64, *const f64, *const f64, *mut f64, *const HostCtx<'_>);

extern "C" fn delay_trampoline(ctx: *const HostCtx<'_>, k: u64, t_past: f64) -> f64 {
    // SAFETY: the native code passes through the pointer `JitFunction::call`
    // gave it, to a HostCtx that outlives the call.
    let ctx = unsafe { &*ctx };
    match catch_unwind(AssertUnwindSafe(|| ctx.host.delayed(k as usize, t_past))) {
        Ok(v) => v,
        Err(payload) => {
            // Keep the first panic; later delay calls in the same evaluation just return NaN.
            let first = ctx.panic.take().unwrap_or(payload);
            ctx.panic.set(Some(first));
            f64::NAN
        }
    }
}

/// Owns the JIT module, hence the code memory, for as long as the function lives.
struct CodeMemory(Mutex<Option<JITModule>>);

impl Drop for CodeMemory {
    fn drop(&mut self) {
        let module = match self.0.get_mut() {
            Ok(m) => m.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(m) = module {
            // SAFETY: the only pointer into this memory is `JitFunction::code`,
            // which is dropped together with this value; no call can be running
            // because calls borrow the JitFunction.
            unsafe { m.free_memory() };
        }
    }
}

pub(crate) struct JitFunction {
    code: NativeFn,
    /// Length of the scratch array the code needs (0 if it is one function).
    n_scratch: usize,
    /// Boxed: the JIT module is large and Function is moved around.
    _memory: Box<CodeMemory>,
}

impl JitFunction {
    /// The caller (`Function::eval`) has checked the slice lengths against the
    /// tape's reads and writes.
    pub(crate) fn call(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64], host: &dyn DelayHost) {
        let panic = crate::interp::with_scratch(self.n_scratch, |scratch| {
            let ctx = HostCtx { scratch: scratch.as_mut_ptr(), host, panic: Cell::new(None) };
            // SAFETY: the code reads y[i] only for i < n_y <= y.len(), p likewise,
            // writes out[..n_out] with n_out <= out.len() (checked by the caller)
            // and scratch[..n_scratch] (allocated here); it calls only the
            // registered Rust functions.
            unsafe { (self.code)(t, y.as_ptr(), p.as_ptr(), out.as_mut_ptr(), &ctx) };
            ctx.panic.take()
        });
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

fn err(function: &str, stage: JitStage, e: impl std::fmt::Display) -> CodegenError {
    CodegenError::Jit { function: function.to_string(), stage, message: e.to_string() }
}

/// The byte offset of element `i` of an f64 array, as the 32-bit immediate
/// loads and stores take.
fn offset(i: usize, name: &str) -> Result<i32, CodegenError> {
    i.checked_mul(8).and_then(|o| i32::try_from(o).ok()).ok_or_else(|| {
        err(name, JitStage::Define, format!("vector index {i} is beyond the 2 GiB a load offset can reach"))
    })
}

fn module(name: &str) -> Result<JITModule, CodegenError> {
    let mut flags = settings::builder();
    let set =
        |flags: &mut settings::Builder, k: &str, v: &str| flags.set(k, v).map_err(|e| err(name, JitStage::Isa, e));
    // Same reasons as cranelift-jit's own defaults: calls to host functions
    // may be far away in the address space.
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "opt_level", "speed")?;
    // The verifier costs compile time on big models; the tape is generated
    // by this crate, so checking it in debug builds is enough.
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa = cranelift_native::builder()
        .map_err(|e| err(name, JitStage::Isa, e))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| err(name, JitStage::Isa, e))?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for op in ALL_UN {
        jb.symbol(ops::un_name(op), ops::un_call(op) as *const u8);
    }
    for op in ALL_BIN {
        jb.symbol(ops::bin_name(op), ops::bin_call(op) as *const u8);
    }
    jb.symbol("vht_min", ops::min as *const u8);
    jb.symbol("vht_max", ops::max as *const u8);
    jb.symbol("vht_delay", delay_trampoline as *const u8);
    Ok(JITModule::new(jb))
}

const ALL_UN: [UnOp; 34] = {
    use UnOp::*;
    [
        Neg, Not, Abs, Exp, Ln, Log10, Sqrt, Sin, Cos, Tan, Sec, Csc, Cot, Sinh, Cosh, Tanh, Sech, Csch, Coth, Asin,
        Acos, Atan, Asec, Acsc, Acot, Asinh, Acosh, Atanh, Asech, Acsch, Acoth, Floor, Ceil, Factorial,
    ]
};

const ALL_BIN: [BinOp; 14] = {
    use BinOp::*;
    [Sub, Div, Pow, Log, Root, Rem, Quotient, Eq, Neq, Lt, Le, Gt, Ge, Implies]
};

/// Imports declared so far in the module, by symbol name.
struct Imports {
    ids: HashMap<String, FuncId>,
}

impl Imports {
    fn get(&mut self, m: &mut JITModule, name: &str, sig: &Signature, fname: &str) -> Result<FuncId, CodegenError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let id = m.declare_function(name, Linkage::Import, sig).map_err(|e| err(fname, JitStage::Define, e))?;
        self.ids.insert(name.to_string(), id);
        Ok(id)
    }
}

/// Tape instructions per native function. Cranelift's compile time grows
/// faster than linearly with the size of one straight-line function (a
/// 3000-state model took 25 s as one function), so big tapes are cut into
/// chunks compiled separately, which pass values to later chunks through a
/// scratch array. Small tapes stay one function without scratch memory.
const CHUNK: usize = 1024;

struct Sigs {
    un: Signature,
    bin: Signature,
    delay: Signature,
}

/// The values a function body sees: the entry parameters and, in chunked
/// mode, the scratch array.
#[derive(Clone, Copy)]
struct Params {
    t: Value,
    y: Value,
    p: Value,
    out: Value,
    host: Value,
    scratch: Option<Value>,
}

/// How the chunks of one tape share values.
struct Plan {
    /// The chunk boundaries: chunk c computes instructions `bounds[c]..bounds[c + 1]`.
    bounds: Vec<usize>,
    /// For each slot read by a later chunk: its index in the scratch array.
    scratch: Vec<Option<u32>>,
    n_scratch: usize,
}

/// Instructions that are as cheap to redo in a later chunk as to pass through scratch.
fn is_leaf(ins: Instr) -> bool {
    matches!(ins, Instr::Const(_) | Instr::Time | Instr::Y(_) | Instr::P(_))
}

fn plan(tape: &Tape) -> Plan {
    let n = tape.instrs.len();
    let mut bounds: Vec<usize> = (0..n).step_by(CHUNK).collect();
    bounds.push(n);
    let chunk_of = |r: usize| r / CHUNK;
    let mut escapes = vec![false; n];
    if bounds.len() > 2 {
        for (i, &ins) in tape.instrs.iter().enumerate() {
            crate::tape::operands(ins, |r| {
                if chunk_of(r as usize) != chunk_of(i) && !is_leaf(tape.instrs[r as usize]) {
                    escapes[r as usize] = true;
                }
            });
        }
    }
    let mut n_scratch = 0;
    let scratch = escapes
        .iter()
        .map(|&e| {
            e.then(|| {
                n_scratch += 1;
                (n_scratch - 1) as u32
            })
        })
        .collect();
    Plan { bounds, scratch, n_scratch }
}

pub(crate) fn compile(tape: &Tape, name: &str) -> Result<JitFunction, CodegenError> {
    let mut m = module(name)?;
    let ptr = m.target_config().pointer_type();

    let mut entry_sig = m.make_signature();
    entry_sig.params.push(AbiParam::new(types::F64));
    for _ in 0..4 {
        entry_sig.params.push(AbiParam::new(ptr));
    }
    let mut chunk_sig = entry_sig.clone();
    chunk_sig.params.push(AbiParam::new(ptr));
    let mut un = m.make_signature();
    un.params.push(AbiParam::new(types::F64));
    un.returns.push(AbiParam::new(types::F64));
    let mut bin = un.clone();
    bin.params.push(AbiParam::new(types::F64));
    let mut delay = m.make_signature();
    delay.params.push(AbiParam::new(ptr));
    delay.params.push(AbiParam::new(types::I64));
    delay.params.push(AbiParam::new(types::F64));
    delay.returns.push(AbiParam::new(types::F64));
    let sigs = Sigs { un, bin, delay };

    let plan = plan(tape);
    let n_chunks = plan.bounds.len() - 1;
    let mut imports = Imports { ids: HashMap::new() };
    let mut fctx = FunctionBuilderContext::new();
    let mut ctx: Context = m.make_context();
    let define = |m: &mut JITModule, id, ctx: &mut Context| {
        m.define_function(id, ctx).map_err(|e| err(name, JitStage::Define, format!("{e:?}")))?;
        m.clear_context(ctx);
        Ok::<(), CodegenError>(())
    };

    let entry_id = m.declare_function(name, Linkage::Local, &entry_sig).map_err(|e| err(name, JitStage::Define, e))?;
    if n_chunks <= 1 {
        ctx.func.signature = entry_sig;
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let params = open_body(&mut b, false);
        emit(&mut b, &mut m, &mut imports, &sigs, tape, &plan, 0..tape.instrs.len(), params, name)?;
        b.ins().return_(&[]);
        b.finalize(m.target_config());
        define(&mut m, entry_id, &mut ctx)?;
    } else {
        let mut chunk_ids = Vec::with_capacity(n_chunks);
        for c in 0..n_chunks {
            let chunk_name = format!("{name}_chunk{c}");
            let id = m
                .declare_function(&chunk_name, Linkage::Local, &chunk_sig)
                .map_err(|e| err(name, JitStage::Define, e))?;
            ctx.func.signature = chunk_sig.clone();
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let params = open_body(&mut b, true);
            emit(&mut b, &mut m, &mut imports, &sigs, tape, &plan, plan.bounds[c]..plan.bounds[c + 1], params, name)?;
            b.ins().return_(&[]);
            b.finalize(m.target_config());
            define(&mut m, id, &mut ctx)?;
            chunk_ids.push(id);
        }
        // The entry point fetches the scratch array from the HostCtx and
        // runs the chunks in order.
        ctx.func.signature = entry_sig;
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let params = open_body(&mut b, false);
        let scratch_offset = i32::try_from(std::mem::offset_of!(HostCtx<'static>, scratch))
            .map_err(|e| err(name, JitStage::Define, e))?;
        let scratch = b.ins().load(ptr, MemFlagsData::trusted(), params.host, scratch_offset);
        for &id in &chunk_ids {
            let fref = m.declare_func_in_func(id, b.func);
            b.ins().call(fref, &[params.t, params.y, params.p, params.out, params.host, scratch]);
        }
        b.ins().return_(&[]);
        b.finalize(m.target_config());
        define(&mut m, entry_id, &mut ctx)?;
    }

    m.finalize_definitions().map_err(|e| err(name, JitStage::Finalize, e))?;
    let code_ptr = m.get_finalized_function(entry_id);
    // SAFETY: `code_ptr` is the entry of the function just defined with exactly
    // the signature of NativeFn (f64, 4 pointers, no return, default C ABI).
    let code = unsafe { std::mem::transmute::<*const u8, NativeFn>(code_ptr) };
    Ok(JitFunction { code, n_scratch: plan.n_scratch, _memory: Box::new(CodeMemory(Mutex::new(Some(m)))) })
}

/// Creates the single block of a function and returns its parameters.
fn open_body(b: &mut FunctionBuilder, with_scratch: bool) -> Params {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let ps = b.block_params(entry).to_vec();
    Params { t: ps[0], y: ps[1], p: ps[2], out: ps[3], host: ps[4], scratch: with_scratch.then(|| ps[5]) }
}

/// Emits the instructions `range` of the tape, storing the outputs they
/// compute and, in chunked mode, the values later chunks read.
#[allow(clippy::too_many_arguments)]
fn emit(
    b: &mut FunctionBuilder,
    m: &mut JITModule,
    imports: &mut Imports,
    sigs: &Sigs,
    tape: &Tape,
    plan: &Plan,
    range: std::ops::Range<usize>,
    ps: Params,
    name: &str,
) -> Result<(), CodegenError> {
    let Params { t, y, p, out, host, scratch } = ps;
    let zero = b.ins().f64const(0.0);
    let one = b.ins().f64const(1.0);
    // y, p, out and scratch are valid, aligned f64 arrays (checked or
    // allocated by JitFunction::call).
    let mem = MemFlagsData::trusted();
    let start = range.start;
    let mut local: Vec<Value> = Vec::with_capacity(range.len());
    // Values of earlier chunks, loaded from scratch once per chunk.
    let mut imported: HashMap<u32, Value> = HashMap::new();

    // Calls an imported Rust function and returns its result.
    macro_rules! call {
        ($name:expr, $sig:expr, $args:expr) => {{
            let id = imports.get(m, $name, $sig, name)?;
            let fref = m.declare_func_in_func(id, b.func);
            let inst = b.ins().call(fref, $args);
            b.inst_results(inst)[0]
        }};
    }

    for i in range.clone() {
        let ins = tape.instrs[i];
        // The operands, resolved to SSA values before emitting `ins`.
        let mut resolve = |r: u32, b: &mut FunctionBuilder| -> Result<Value, CodegenError> {
            let r_us = r as usize;
            if r_us >= start {
                return Ok(local[r_us - start]);
            }
            if let Some(&v) = imported.get(&r) {
                return Ok(v);
            }
            let v = match tape.instrs[r_us] {
                Instr::Const(bits) => Some(b.ins().f64const(f64::from_bits(bits))),
                Instr::Time => Some(t),
                Instr::Y(j) => Some(b.ins().load(types::F64, mem, y, offset(j as usize, name)?)),
                Instr::P(j) => Some(b.ins().load(types::F64, mem, p, offset(j as usize, name)?)),
                _ => None,
            };
            if let Some(v) = v {
                imported.insert(r, v);
                return Ok(v);
            }
            let (Some(base), Some(k)) = (scratch, plan.scratch[r_us]) else {
                return Err(err(name, JitStage::Define, format!("slot {r} read across chunks without scratch space")));
            };
            let v = b.ins().load(types::F64, mem, base, offset(k as usize, name)?);
            imported.insert(r, v);
            Ok(v)
        };
        let mut regs = [None; 3];
        let mut n_regs = 0;
        crate::tape::operands(ins, |r| {
            regs[n_regs] = Some(r);
            n_regs += 1;
        });
        let mut vals = [zero; 3];
        for k in 0..n_regs {
            if let Some(r) = regs[k] {
                vals[k] = resolve(r, b)?;
            }
        }
        let val = match ins {
            Instr::Const(bits) => b.ins().f64const(f64::from_bits(bits)),
            Instr::Time => t,
            Instr::Y(j) => b.ins().load(types::F64, mem, y, offset(j as usize, name)?),
            Instr::P(j) => b.ins().load(types::F64, mem, p, offset(j as usize, name)?),
            Instr::Un(op, _) => {
                let a = vals[0];
                match op {
                    UnOp::Neg => b.ins().fneg(a),
                    UnOp::Abs => b.ins().fabs(a),
                    UnOp::Sqrt => b.ins().sqrt(a),
                    UnOp::Floor => b.ins().floor(a),
                    UnOp::Ceil => b.ins().ceil(a),
                    UnOp::Not => {
                        let c = b.ins().fcmp(FloatCC::Equal, a, zero);
                        b.ins().select(c, one, zero)
                    }
                    _ => call!(&ops::un_name(op), &sigs.un, &[a]),
                }
            }
            Instr::Bin(op, _, _) => {
                let (a, c) = (vals[0], vals[1]);
                let cmp = |b: &mut FunctionBuilder, cc: FloatCC| {
                    let x = b.ins().fcmp(cc, a, c);
                    b.ins().select(x, one, zero)
                };
                match op {
                    BinOp::Sub => b.ins().fsub(a, c),
                    BinOp::Div => b.ins().fdiv(a, c),
                    BinOp::Quotient => {
                        let q = b.ins().fdiv(a, c);
                        b.ins().trunc(q)
                    }
                    // Equal/LessThan/... are ordered (false on NaN) and
                    // NotEqual is unordered (true on NaN), as Rust's
                    // ==, <, ... and != are.
                    BinOp::Eq => cmp(b, FloatCC::Equal),
                    BinOp::Neq => cmp(b, FloatCC::NotEqual),
                    BinOp::Lt => cmp(b, FloatCC::LessThan),
                    BinOp::Le => cmp(b, FloatCC::LessThanOrEqual),
                    BinOp::Gt => cmp(b, FloatCC::GreaterThan),
                    BinOp::Ge => cmp(b, FloatCC::GreaterThanOrEqual),
                    BinOp::Implies => {
                        let not_a = b.ins().fcmp(FloatCC::Equal, a, zero);
                        let c_true = b.ins().fcmp(FloatCC::NotEqual, c, zero);
                        let x = b.ins().bor(not_a, c_true);
                        b.ins().select(x, one, zero)
                    }
                    BinOp::Pow | BinOp::Log | BinOp::Root | BinOp::Rem => call!(&ops::bin_name(op), &sigs.bin, &[a, c]),
                }
            }
            Instr::Add(..) => b.ins().fadd(vals[0], vals[1]),
            Instr::Mul(..) => b.ins().fmul(vals[0], vals[1]),
            // Cranelift's fmin/fmax order signed zeros differently from the
            // IR's fold, so these call the shared definition.
            Instr::Min(..) => call!("vht_min", &sigs.bin, &[vals[0], vals[1]]),
            Instr::Max(..) => call!("vht_max", &sigs.bin, &[vals[0], vals[1]]),
            Instr::And(..) | Instr::Or(..) | Instr::Xor(..) => {
                let x = b.ins().fcmp(FloatCC::NotEqual, vals[0], zero);
                let z = b.ins().fcmp(FloatCC::NotEqual, vals[1], zero);
                let both = match ins {
                    Instr::And(..) => b.ins().band(x, z),
                    Instr::Or(..) => b.ins().bor(x, z),
                    _ => b.ins().bxor(x, z),
                };
                b.ins().select(both, one, zero)
            }
            Instr::Truth(_) => {
                let x = b.ins().fcmp(FloatCC::NotEqual, vals[0], zero);
                b.ins().select(x, one, zero)
            }
            Instr::Select(..) => {
                let x = b.ins().fcmp(FloatCC::NotEqual, vals[0], zero);
                b.ins().select(x, vals[1], vals[2])
            }
            Instr::Delay(k, _) => {
                let k = b.ins().iconst(types::I64, k as i64);
                let t_past = b.ins().fsub(t, vals[0]);
                call!("vht_delay", &sigs.delay, &[host, k, t_past])
            }
        };
        local.push(val);
        if let (Some(base), Some(k)) = (scratch, plan.scratch[i]) {
            b.ins().store(mem, val, base, offset(k as usize, name)?);
        }
    }
    for (o, &r) in tape.outputs.iter().enumerate() {
        if range.contains(&(r as usize)) {
            b.ins().store(mem, local[r as usize - start], out, offset(o, name)?);
        }
    }
    Ok(())
}
