"""Type stubs of the native module (Rust, pyo3). Use the classes of ``splade_rs`` instead."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

DEFAULT_MODEL: str

_Csr = Tuple[bytes, bytes, bytes, int]

class NativeEncoder:
    def __init__(self, model_name_or_path: str, device: str) -> None: ...
    def encode(
        self,
        texts: List[str],
        kind: str,
        batch_size: int,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        max_active_dims: Optional[int] = None,
        show_progress: bool = False,
    ) -> Tuple[bytearray, bytearray, bytearray, int, int]: ...
    def decode(
        self, indptr: bytes, indices: bytes, data: bytes, cols: int, top_k: Optional[int] = None
    ) -> List[List[Tuple[str, float]]]: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def default_max_active_dims(self) -> Optional[int]: ...
    @property
    def is_csr(self) -> bool: ...
    @property
    def similarity_fn_name(self) -> str: ...
    @property
    def prompts(self) -> List[Tuple[str, str]]: ...
    @property
    def folder(self) -> str: ...

def similarity(a: _Csr, b: _Csr, function: str, pairwise: bool = False) -> bytes: ...
def intersection(a: _Csr, b: _Csr) -> Tuple[List[int], List[float]]: ...

class NativeIndex:
    @staticmethod
    def build(
        path: Union[str, PathLike[str]],
        ids: List[str],
        vectors: _Csr,
        overwrite: bool = False,
        block_size: Optional[int] = None,
    ) -> "NativeIndex": ...
    @staticmethod
    def open(path: Union[str, PathLike[str]], in_memory: bool = False) -> "NativeIndex": ...
    def add(self, ids: List[str], vectors: _Csr, replace: bool = True) -> int: ...
    def delete(self, ids: List[str]) -> List[str]: ...
    def optimize(self) -> None: ...
    def search(
        self,
        queries: _Csr,
        k: int,
        alpha: Optional[float] = None,
        beta: Optional[float] = None,
        threads: Optional[int] = None,
    ) -> List[List[Tuple[str, float]]]: ...
    def info(self) -> Tuple[int, int, int, int, List[Tuple[int, int, int, int]]]: ...
    def __len__(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def path(self) -> str: ...

def evaluate_ir(
    encoder: NativeEncoder,
    corpus: List[Tuple[str, str]],
    queries: List[Tuple[str, str]],
    relevant: Dict[str, List[str]],
    name: str,
    batch_size: int = 32,
    max_active_dims: Optional[int] = None,
) -> List[Tuple[str, float]]: ...
def evaluate_binary(
    encoder: NativeEncoder,
    sentences1: List[str],
    sentences2: List[str],
    labels: List[int],
    name: str,
    batch_size: int = 32,
    max_active_dims: Optional[int] = None,
) -> List[Tuple[str, float]]: ...

def train(
    options: Dict[str, Any],
    config: Optional[Union[str, PathLike]] = None,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    show_progress_bar: bool = False,
) -> str: ...
