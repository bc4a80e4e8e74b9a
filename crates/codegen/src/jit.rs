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
pub(crate) struct HostCtx<'a> {
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
    _memory: CodeMemory,
}

impl JitFunction {
    /// The caller (`Function::eval`) has checked the slice lengths against the
    /// tape's reads and writes.
    pub(crate) fn call(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64], host: &dyn DelayHost) {
        let ctx = HostCtx { host, panic: Cell::new(None) };
        // SAFETY: the code reads y[i] only for i < n_y <= y.len(), p likewise,
        // and writes out[..n_out] with n_out <= out.len() (checked by the caller);
        // it calls only the registered Rust functions.
        unsafe { (self.code)(t, y.as_ptr(), p.as_ptr(), out.as_mut_ptr(), &ctx) };
        if let Some(payload) = ctx.panic.take() {
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
    i.checked_mul(8)
        .and_then(|o| i32::try_from(o).ok())
        .ok_or_else(|| err(name, JitStage::Define, format!("vector index {i} is beyond the 2 GiB a load offset can reach")))
}

fn module(name: &str) -> Result<JITModule, CodegenError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, k: &str, v: &str| flags.set(k, v).map_err(|e| err(name, JitStage::Isa, e));
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
        Neg, Not, Abs, Exp, Ln, Log10, Sqrt, Sin, Cos, Tan, Sec, Csc, Cot, Sinh, Cosh, Tanh, Sech, Csch, Coth, Asin, Acos,
        Atan, Asec, Acsc, Acot, Asinh, Acosh, Atanh, Asech, Acsch, Acoth, Floor, Ceil, Factorial,
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

pub(crate) fn compile(tape: &Tape, name: &str) -> Result<JitFunction, CodegenError> {
    let mut m = module(name)?;
    let ptr = m.target_config().pointer_type();

    let mut sig = m.make_signature();
    sig.params.push(AbiParam::new(types::F64));
    for _ in 0..4 {
        sig.params.push(AbiParam::new(ptr));
    }
    let mut un_sig = m.make_signature();
    un_sig.params.push(AbiParam::new(types::F64));
    un_sig.returns.push(AbiParam::new(types::F64));
    let mut bin_sig = un_sig.clone();
    bin_sig.params.push(AbiParam::new(types::F64));
    let mut delay_sig = m.make_signature();
    delay_sig.params.push(AbiParam::new(ptr));
    delay_sig.params.push(AbiParam::new(types::I64));
    delay_sig.params.push(AbiParam::new(types::F64));
    delay_sig.returns.push(AbiParam::new(types::F64));

    let func_id = m.declare_function(name, Linkage::Local, &sig).map_err(|e| err(name, JitStage::Define, e))?;
    let mut ctx: Context = m.make_context();
    ctx.func.signature = sig;
    let mut imports = Imports { ids: HashMap::new() };
    let mut fctx = FunctionBuilderContext::new();
    let frontend = m.target_config();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let (t, y, p, out, host) = (params[0], params[1], params[2], params[3], params[4]);
        let zero = b.ins().f64const(0.0);
        let one = b.ins().f64const(1.0);
        // y, p and out are valid, aligned f64 arrays (checked by the caller).
        let mem = MemFlagsData::trusted();
        let mut v: Vec<Value> = Vec::with_capacity(tape.instrs.len());

        // Calls an imported Rust function and returns its result.
        macro_rules! call {
            ($name:expr, $sig:expr, $args:expr) => {{
                let id = imports.get(&mut m, &$name, $sig, name)?;
                let fref = m.declare_func_in_func(id, b.func);
                let inst = b.ins().call(fref, $args);
                b.inst_results(inst)[0]
            }};
        }

        for &ins in &tape.instrs {
            let r = |i: u32| v[i as usize];
            let val = match ins {
                Instr::Const(bits) => b.ins().f64const(f64::from_bits(bits)),
                Instr::Time => t,
                Instr::Y(i) => b.ins().load(types::F64, mem, y, offset(i as usize, name)?),
                Instr::P(i) => b.ins().load(types::F64, mem, p, offset(i as usize, name)?),
                Instr::Un(op, a) => {
                    let a = r(a);
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
                        _ => call!(ops::un_name(op), &un_sig, &[a]),
                    }
                }
                Instr::Bin(op, a, c) => {
                    let (a, c) = (r(a), r(c));
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
                        BinOp::Eq => cmp(&mut b, FloatCC::Equal),
                        BinOp::Neq => cmp(&mut b, FloatCC::NotEqual),
                        BinOp::Lt => cmp(&mut b, FloatCC::LessThan),
                        BinOp::Le => cmp(&mut b, FloatCC::LessThanOrEqual),
                        BinOp::Gt => cmp(&mut b, FloatCC::GreaterThan),
                        BinOp::Ge => cmp(&mut b, FloatCC::GreaterThanOrEqual),
                        BinOp::Implies => {
                            let not_a = b.ins().fcmp(FloatCC::Equal, a, zero);
                            let c_true = b.ins().fcmp(FloatCC::NotEqual, c, zero);
                            let x = b.ins().bor(not_a, c_true);
                            b.ins().select(x, one, zero)
                        }
                        BinOp::Pow | BinOp::Log | BinOp::Root | BinOp::Rem => {
                            call!(ops::bin_name(op), &bin_sig, &[a, c])
                        }
                    }
                }
                Instr::Add(a, c) => b.ins().fadd(r(a), r(c)),
                Instr::Mul(a, c) => b.ins().fmul(r(a), r(c)),
                // Cranelift's fmin/fmax order signed zeros differently from the
                // IR's fold, so these call the shared definition.
                Instr::Min(a, c) => call!("vht_min".to_string(), &bin_sig, &[r(a), r(c)]),
                Instr::Max(a, c) => call!("vht_max".to_string(), &bin_sig, &[r(a), r(c)]),
                Instr::And(a, c) | Instr::Or(a, c) | Instr::Xor(a, c) => {
                    let x = b.ins().fcmp(FloatCC::NotEqual, r(a), zero);
                    let z = b.ins().fcmp(FloatCC::NotEqual, r(c), zero);
                    let both = match ins {
                        Instr::And(..) => b.ins().band(x, z),
                        Instr::Or(..) => b.ins().bor(x, z),
                        _ => b.ins().bxor(x, z),
                    };
                    b.ins().select(both, one, zero)
                }
                Instr::Truth(a) => {
                    let x = b.ins().fcmp(FloatCC::NotEqual, r(a), zero);
                    b.ins().select(x, one, zero)
                }
                Instr::Select(c, a, e) => {
                    let x = b.ins().fcmp(FloatCC::NotEqual, r(c), zero);
                    b.ins().select(x, r(a), r(e))
                }
                Instr::Delay(k, tau) => {
                    let k = b.ins().iconst(types::I64, k as i64);
                    let t_past = b.ins().fsub(t, r(tau));
                    call!("vht_delay".to_string(), &delay_sig, &[host, k, t_past])
                }
            };
            v.push(val);
        }
        for (i, &o) in tape.outputs.iter().enumerate() {
            b.ins().store(mem, v[o as usize], out, offset(i, name)?);
        }
        b.ins().return_(&[]);
        b.finalize(frontend);
    }
    m.define_function(func_id, &mut ctx).map_err(|e| err(name, JitStage::Define, format!("{e:?}")))?;
    m.clear_context(&mut ctx);
    m.finalize_definitions().map_err(|e| err(name, JitStage::Finalize, e))?;
    let ptr = m.get_finalized_function(func_id);
    // SAFETY: `ptr` is the entry of the function just defined with exactly
    // the signature of NativeFn (f64, 4 pointers, no return, default C ABI).
    let code = unsafe { std::mem::transmute::<*const u8, NativeFn>(ptr) };
    Ok(JitFunction { code, _memory: CodeMemory(Mutex::new(Some(m))) })
}
